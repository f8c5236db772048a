"""Our ES modules, served as written but importing each other by content-hashed names.

The scripts in web/static import one another with relative specifiers
(`import { connect } from "../lib/ws-client.js"`). Static files are served only under
content-hashed names with a one-year cache, so a module's relative imports are rewritten
to the hashed names of the files they import, and the module's own hash is taken over
the rewritten text: a change deep in the graph renames every module that leads to it,
and a browser never mixes an old module with a new one. No build step, no import map
(an inline one would need a CSP hash): only the specifiers change.

The rewrite is a regular expression over our own import statements, whose form
`make lint` (web/jslint.py) keeps to what it understands: static `import … from "./x.js"`
/ `export … from "./x.js"` at the start of a line, relative specifiers only, no cycles.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping

# `import x from "…"`, `import { a, b } from "…"` (over several lines), `import "…"`,
# `export { a } from "…"`, `export * from "…"`: a statement at the start of a line.
IMPORT = re.compile(
    r"""^(?P<head>[ \t]*(?:import[ \t]*|(?:import|export)\b[^'";]*?\bfrom[ \t]*))"""
    r"""(?P<quote>["'])(?P<spec>[^"'\n]+)(?P=quote)""",
    re.MULTILINE,
)


class ModuleError(ValueError):
    """An import the server cannot serve: not relative, missing, or part of a cycle."""


def hashed_name(logical: str, body: bytes) -> str:
    """`call/ui.js` → `call/ui.<sha256[:12]>.js`: the name changes whenever the bytes do."""
    digest = hashlib.sha256(body).hexdigest()[:12]
    stem, dot, suffix = logical.rpartition(".")
    return f"{stem}.{digest}.{suffix}" if dot else f"{logical}.{digest}"


def specifiers(source: str) -> list[str]:
    """The specifiers of a module's static imports and re-exports, in order."""
    return [match["spec"] for match in IMPORT.finditer(source)]


def resolve(importer: str, specifier: str) -> str:
    """The logical name (path under web/static) that `specifier` names from `importer`."""
    if not specifier.startswith(("./", "../")):
        raise ModuleError(f"{importer}: import {specifier!r} is not relative (no packages here)")
    target = posixpath.normpath(posixpath.join(posixpath.dirname(importer), specifier))
    if target.startswith("../"):
        raise ModuleError(f"{importer}: import {specifier!r} leaves the static directory")
    return target


def graph(files: Mapping[str, bytes]) -> dict[str, list[str]]:
    """Each JS module → the logical names it imports (missing targets are an error)."""
    edges: dict[str, list[str]] = {}
    for name, body in files.items():
        if not name.endswith(".js"):
            continue
        targets = [resolve(name, spec) for spec in specifiers(body.decode("utf-8"))]
        for target in targets:
            if target not in files:
                raise ModuleError(f"{name}: imports {target}, which does not exist")
        edges[name] = targets
    return edges


def closure(edges: Mapping[str, list[str]], entries: tuple[str, ...]) -> list[str]:
    """Everything the entry modules import, directly or not, dependencies first."""
    seen: list[str] = []

    def visit(name: str) -> None:
        for target in edges.get(name, []):
            if target not in seen and target not in entries:
                visit(target)
                seen.append(target)

    for entry in entries:
        visit(entry)
    return seen


def link(files: Mapping[str, bytes]) -> dict[str, tuple[str, bytes]]:
    """logical name → (hashed name, bytes to serve), imports rewritten to hashed names."""
    edges = graph(files)
    done: dict[str, tuple[str, bytes]] = {}

    def visit(name: str, trail: tuple[str, ...]) -> tuple[str, bytes]:
        if name in done:
            return done[name]
        if name in trail:
            cycle = " → ".join((*trail[trail.index(name) :], name))
            raise ModuleError(f"import cycle: {cycle}")
        body = files[name]
        if name in edges and edges[name]:
            directory = posixpath.dirname(name)

            def to_hashed(match: re.Match[str]) -> str:
                target = resolve(name, match["spec"])
                target_hashed, _ = visit(target, (*trail, name))
                relative = posixpath.relpath(target_hashed, directory or ".")
                if not relative.startswith("../"):
                    relative = "./" + relative
                return f"{match['head']}{match['quote']}{relative}{match['quote']}"

            body = IMPORT.sub(to_hashed, body.decode("utf-8")).encode("utf-8")
        done[name] = (hashed_name(name, body), body)
        return done[name]

    for name in files:
        visit(name, ())
    return done
