"""Charts as SVG, drawn on the server by pygal: no charting script reaches the browser.

Each chart is handed to the page as a data: URI image (the page's CSP allows data:
images, and an image's own styles stay inside it), with the same numbers in a table
beside it for screen readers and for copying.
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Sequence
from typing import Any

import pygal
from pygal.style import Style

# pygal appends a legacy import hook (for its map plugins, unused here) to sys.meta_path;
# it has no find_spec, so every later failed import warns (ImportWarning). Take it out.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

# Our palette (web/static/app.css); no web font: the clinic's own fonts.
STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#52606d",
    colors=("#1f6f8b", "#e07a2f", "#7b8794", "#3f8f4f", "#9b4dca", "#c0392b"),
    font_family="system-ui, sans-serif",
    title_font_size=16,
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=12,
    value_font_size=11,
)


def _config(title: str) -> dict[str, object]:
    return {
        "title": title,
        "style": STYLE,
        "width": 760,
        "height": 340,
        "js": [],  # pygal links its tooltip script from the web by default: never
        "disable_xml_declaration": True,
        "legend_at_bottom": True,
        "print_values": False,
        "show_minor_x_labels": True,
        "truncate_legend": -1,
    }


_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)


def _svg(chart: Any) -> str:
    """The chart's SVG without pygal's inline config script (an image runs no script
    anyway; the markup stays what it shows)."""
    return _SCRIPT.sub("", str(chart.render(is_unicode=True)))


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def bars(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    reference: tuple[str, float] | None = None,
    percent: bool = False,
) -> str:
    """Grouped bars per label (e.g. median and p90 by region), with a reference series."""
    chart = pygal.Bar(**_config(title))
    chart.x_labels = list(labels)
    if percent:
        chart.value_formatter = lambda value: f"{value:.0%}"
        chart.range = (0, 1)
    else:
        chart.value_formatter = lambda value: f"{value:.1f} h"
    for name, values in series:
        chart.add(name, list(values))
    if reference is not None:
        chart.add(reference[0], [reference[1]] * len(labels))
    return _svg(chart)


def lines(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    reference: tuple[str, float] | None = None,
) -> str:
    """One line per series over the weeks, with a flat reference line."""
    chart = pygal.Line(**_config(title), allow_interruptions=True, x_label_rotation=30)
    chart.x_labels = list(labels)
    chart.value_formatter = lambda value: f"{value:.1f} h"
    for name, values in series:
        chart.add(name, list(values))
    if reference is not None:
        chart.add(reference[0], [reference[1]] * len(labels), show_dots=False, dots_size=0)
    return _svg(chart)
