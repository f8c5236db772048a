"""The equity view: its page (tables and server-drawn charts) and its CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from server.accounts.deps import client_ip
from server.accounts.models import Region, Specialty
from server.audit import service as audit
from server.clock import utcnow
from server.consults.models import Urgency
from server.db import SessionDep
from server.equity import charts, facts, service
from server.equity.deps import EquityViewer
from server.equity.service import Cell, Dimension, Figures, Filters
from server.errors import AppError
from web.render import N_, render, request_locale, translations, viewer_of

router = APIRouter(include_in_schema=False)

# The published reference the figures stand beside (docs/equity.md): Liddy C, Moroz I,
# Afkham A, Keely E. Sustainability of a primary care-driven eConsult service.
# Ann Fam Med 2018;16(2):120-126 (Champlain BASE, Ontario: 14,105 eConsults 2011-2016,
# median specialist response 21 hours, 65 % resolved without a specialist visit).
REFERENCE_MEDIAN_HOURS = 21.0
REFERENCE_RESOLVED_SHARE = 0.65
REFERENCE_URL = "https://doi.org/10.1370/afm.2177"
WEEK_CHOICES = (4, 12, 26, 52)

# Values shown through _(value) on this view (the role and the organisation kind).
DYNAMIC = (
    N_("region_authority"),
    N_("authority"),
    N_("region"),
    N_("specialty"),
    N_("urgency"),
    N_("week"),
)


def _int_or_none(raw: str, name: str) -> int | None:
    if raw in ("", "all"):
        return None
    try:
        return int(raw)
    except ValueError:
        raise AppError(
            "invalid_filter", "%(name)s must be a number", 422, params={"name": name}
        ) from None


def _filters(
    scope: Any, weeks: str, start: str, region: str, specialty: str, urgency: str
) -> Filters:
    count = _int_or_none(weeks, "weeks") or service.DEFAULT_WEEKS
    if not 1 <= count <= service.MAX_WEEKS:
        raise AppError(
            "invalid_filter",
            "weeks must be 1 to %(max)s",
            422,
            params={"max": service.MAX_WEEKS},
        )
    if start:
        try:
            first = date.fromisoformat(start)
        except ValueError:
            raise AppError("invalid_filter", "start must be a date (YYYY-MM-DD)", 422) from None
        first = service.default_start(first, 1)  # the Monday of that week
    else:
        first = service.default_start(utcnow().date(), count)
    chosen_urgency = None
    if urgency not in ("", "all"):
        try:
            chosen_urgency = Urgency(urgency)
        except ValueError:
            raise AppError("invalid_filter", "unknown urgency", 422) from None
    return Filters(
        start=first,
        weeks=count,
        region_id=scope.region_for(_int_or_none(region, "region")),
        specialty_id=_int_or_none(specialty, "specialty"),
        urgency=chosen_urgency,
    )


@dataclass
class Labels:
    regions: dict[str, str]
    specialties: dict[str, str]


def _labels(session: Session, locale: str) -> Labels:
    def name(row: Region | Specialty) -> str:
        return row.name_ko if locale == "ko" else row.name_en

    regions = session.exec(select(Region).order_by(col(Region.id))).all()
    specialties = session.exec(select(Specialty).order_by(col(Specialty.id))).all()
    return Labels({str(r.id): name(r) for r in regions}, {str(s.id): name(s) for s in specialties})


def _label(dimension: Dimension, cell: Cell, labels: Labels, filters: Filters, gettext: Any) -> str:
    if dimension == Dimension.REGION:
        return labels.regions.get(cell.key, cell.key)
    if dimension == Dimension.SPECIALTY:
        return labels.specialties.get(cell.key, cell.key)
    if dimension == Dimension.URGENCY:
        return str(gettext(cell.key))
    return service.week_start_of(filters, cell.key).strftime("%m-%d")


def _compute(session: Session, filters: Filters) -> Figures:
    # Bring the per-consult figures up to date (new consults, open ones) first.
    facts.refresh(session)
    return service.figures(session, filters)


def _charts(figures: Figures, labels: Labels, gettext: Any) -> list[dict[str, str]]:
    regions = figures.by[Dimension.REGION]
    region_names = [_label(Dimension.REGION, c, labels, figures.filters, gettext) for c in regions]
    reference = str(gettext("Champlain BASE reference"))
    weeks = figures.by[Dimension.WEEK]
    week_names = [_label(Dimension.WEEK, c, labels, figures.filters, gettext) for c in weeks]
    response = charts.bars(
        str(gettext("Hours to first response, by region")),
        region_names,
        [
            (str(gettext("median")), [c.response_median_h for c in regions]),
            (str(gettext("90th percentile")), [c.response_p90_h for c in regions]),
        ],
        reference=(reference, REFERENCE_MEDIAN_HOURS),
    )
    resolved = charts.bars(
        str(gettext("Share resolved without referral, by region")),
        region_names,
        [(str(gettext("resolved without referral")), [c.resolved_share for c in regions])],
        reference=(reference, REFERENCE_RESOLVED_SHARE),
        percent=True,
    )
    weekly = charts.lines(
        str(gettext("Median hours to first response, by week")),
        week_names,
        [
            (name, [c.response_median_h for c in figures.region_weeks[cell.key]])
            for name, cell in zip(region_names, regions, strict=True)
        ]
        + [(str(gettext("all regions")), [c.response_median_h for c in weeks])],
        reference=(reference, REFERENCE_MEDIAN_HOURS),
    )
    return [
        {
            "id": "chart-response",
            "src": charts.data_uri(response),
            "alt": str(gettext("Hours to first response, by region")),
        },
        {
            "id": "chart-resolved",
            "src": charts.data_uri(resolved),
            "alt": str(gettext("Share resolved without referral, by region")),
        },
        {
            "id": "chart-weekly",
            "src": charts.data_uri(weekly),
            "alt": str(gettext("Median hours to first response, by week")),
        },
    ]


def _view(
    request: Request, session: Session, filters: Filters
) -> tuple[Callable[[str], str], Labels, Figures]:
    """What the page and the CSV share: the viewer's language, the labels and the figures."""
    locale = request_locale(request, viewer_of(request))
    return translations(locale).gettext, _labels(session, locale), _compute(session, filters)


@router.get("/equity")
def equity_page(
    request: Request,
    session: SessionDep,
    scope: EquityViewer,
    weeks: str = "",
    start: str = "",
    region: str = "",
    specialty: str = "",
    urgency: str = "",
) -> Response:
    """Time to consult by region, specialty, urgency and week, beside the reference."""
    filters = _filters(scope, weeks, start, region, specialty, urgency)
    gettext, labels, figures = _view(request, session, filters)
    tables = [
        (
            dimension.value,
            [(_label(dimension, cell, labels, filters, gettext), cell) for cell in cells],
        )
        for dimension, cells in figures.by.items()
    ]
    query = request.url.query
    return render(
        request,
        "equity/dashboard.html",
        figures=figures,
        filters=filters,
        tables=tables,
        charts=_charts(figures, labels, gettext),
        labels=labels,
        held_region=scope.region_id,
        week_choices=WEEK_CHOICES,
        urgencies=[u.value for u in Urgency],
        reference_hours=REFERENCE_MEDIAN_HOURS,
        reference_share=REFERENCE_RESOLVED_SHARE,
        reference_url=REFERENCE_URL,
        csv_url="/equity.csv" + (f"?{query}" if query else ""),
        end_day=filters.end_at.date() - timedelta(days=1),
    )


CSV_COLUMNS = (
    N_("breakdown"),
    N_("group"),
    N_("consults"),
    N_("responded"),
    N_("median hours to first response"),
    N_("p90 hours to first response"),
    N_("signed reports"),
    N_("median hours to signed report"),
    N_("p90 hours to signed report"),
    N_("closed with an outcome"),
    N_("share resolved without referral"),
    N_("share written"),
    N_("declined"),
    N_("escalated"),
)


def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


@router.get("/equity.csv")
def equity_csv(
    request: Request,
    session: SessionDep,
    scope: EquityViewer,
    weeks: str = "",
    start: str = "",
    region: str = "",
    specialty: str = "",
    urgency: str = "",
) -> Response:
    """The same figures as CSV (UTF-8 with BOM, so spreadsheet programs read Hangul)."""
    filters = _filters(scope, weeks, start, region, specialty, urgency)
    gettext, labels, figures = _view(request, session, filters)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([gettext(column) for column in CSV_COLUMNS])
    rows: list[tuple[str, str, Cell]] = [(gettext("all"), gettext("all"), figures.overall)]
    for dimension, cells in figures.by.items():
        for cell in cells:
            rows.append(
                (gettext(dimension.value), _label(dimension, cell, labels, filters, gettext), cell)
            )
    for breakdown, group, cell in rows:
        writer.writerow(
            [
                breakdown,
                group,
                cell.n,
                cell.responded,
                _number(cell.response_median_h),
                _number(cell.response_p90_h),
                cell.reported,
                _number(cell.report_median_h),
                _number(cell.report_p90_h),
                cell.with_outcome,
                _number(cell.resolved_share, 3),
                _number(cell.written_share, 3),
                cell.declined,
                cell.escalated,
            ]
        )
    audit.record(
        session,
        "equity.export",
        actor_id=scope.user.id,
        ip=client_ip(request),
        object_type="equity",
        organisation_id=scope.user.organisation_id,
        detail={"start": filters.start.isoformat(), "weeks": filters.weeks},
    )
    name = f"dari-equity-{filters.start.isoformat()}-{filters.weeks}w.csv"
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
