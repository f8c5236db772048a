"""`make lint` for our JavaScript: no npm, only Node's own parser and a few rules of ours.

Every file in web/static/*.js is an ES module. Node (`node --check`) parses each one, so
a syntax error fails the build rather than a page; the module graph must link the way
the server serves it (web/js_modules.py: relative imports of files that exist, no
cycles); and a few rules keep what the pages promise:

* text only: no innerHTML / outerHTML / insertAdjacentHTML / document.write (chat lines,
  names and notes are shown as text, never parsed as HTML);
* no eval or new Function (the CSP forbids them anyway) and no dynamic import() (its
  specifier would not be rewritten to a hashed name);
* every import is a static statement the server's rewrite understands;
* timers only through lib/timers.js, so that hang-up and leaving the page clear them
  (the pre-call check and the consult page's autosave keep their own, listed below);
* no console.log left behind (console.warn for what an engineer should see is fine).

Run: `python -m web.jslint` (exit status 1 on a problem, 2 when Node is missing).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from web import js_modules
from web.assets import STATIC_DIR

# Raw timers allowed here: the registry itself, and two pages with their own cleanup.
OWN_TIMERS = {
    "lib/timers.js": "the registry",
    "precall.js": "a one-shot test that clears its timers when it finishes",
}

RULES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"\b(?:innerHTML|outerHTML|insertAdjacentHTML)\b|\bdocument\.write\b"),
        "builds HTML from strings: create elements and set textContent",
    ),
    (re.compile(r"\beval\s*\(|\bnew\s+Function\s*\("), "eval / new Function (refused by the CSP)"),
    (re.compile(r"\bimport\s*\("), "dynamic import(): its specifier is not rewritten"),
    (re.compile(r"\bconsole\.log\s*\("), "console.log left behind"),
]
RAW_TIMER = re.compile(r"\bset(?:Timeout|Interval)\s*\(")
IMPORT_LINE = re.compile(
    r"""^[ \t]*(?:import\b(?!\s*[(.])|export\b[^;\n]*\bfrom\s*["'])""", re.MULTILINE
)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def check_source(name: str, text: str) -> list[str]:
    """Problems of one module under our own rules (no parsing: see check_syntax)."""
    problems: list[str] = []
    for pattern, why in RULES:
        for match in pattern.finditer(text):
            problems.append(f"{name}:{line_of(text, match.start())}: {why}")
    if name not in OWN_TIMERS:
        for match in RAW_TIMER.finditer(text):
            problems.append(
                f"{name}:{line_of(text, match.start())}: raw timer: use lib/timers.js"
                " (Timers.after / every) so that hang-up and page exit clear it"
            )
    understood = {match.start() for match in js_modules.IMPORT.finditer(text)}
    for match in IMPORT_LINE.finditer(text):
        if match.start() not in understood:
            problems.append(
                f"{name}:{line_of(text, match.start())}: import the server cannot rewrite"
                ' (write `import { a } from "./file.js";`)'
            )
    return problems


def check_syntax(node: str, name: str, text: str) -> list[str]:
    """Node's parser over one module (stdin, so that no package.json decides the type)."""
    result = subprocess.run(
        [node, "--input-type=module", "--check"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return []
    detail = (result.stderr or result.stdout).strip().replace("[stdin]", name)
    return [f"{name}: syntax error\n{detail}"]


def sources() -> dict[str, str]:
    return {
        path.relative_to(STATIC_DIR).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(STATIC_DIR.rglob("*.js"))
    }


def problems(node: str | None, files: dict[str, str] | None = None) -> list[str]:
    """Everything wrong with web/static/**/*.js (or `files`); Node's check only when `node`
    is given."""
    files = sources() if files is None else files
    found: list[str] = []
    for name, text in files.items():
        found += check_source(name, text)
        if node is not None:
            found += check_syntax(node, name, text)
    try:
        js_modules.link({name: text.encode("utf-8") for name, text in files.items()})
    except js_modules.ModuleError as error:
        found.append(str(error))
    return found


def main() -> int:
    node = shutil.which("node")
    if node is None:
        print(
            "web.jslint: `node` not found. Node.js (18 or later, no npm needed) parses our"
            " modules: apt-get install -y nodejs",
            file=sys.stderr,
        )
        return 2
    files = sources()
    found = problems(node, files)
    for problem in found:
        print(problem, file=sys.stderr)
    if found:
        return 1
    print(f"web.jslint: {len(files)} modules OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
