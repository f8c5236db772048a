"""ES modules under hashed names (web/js_modules.py) and the JS lint (web/jslint.py)."""

from __future__ import annotations

import shutil

import pytest

from web import jslint
from web.js_modules import ModuleError, closure, graph, link, specifiers

ENTRY = b"""import { connect } from "./lib/ws-client.js";
import {
  a,
  b,
} from './call/parts.js';
import "./lib/side.js";
export { c } from "./call/parts.js";
export function onIceRestart(from) { return from; }
const text = "import nothing from here";
"""
FILES = {
    "call.js": ENTRY,
    "lib/ws-client.js": b'import { Timers } from "./timers.js";\nexport const connect = 1;\n',
    "lib/timers.js": b"export class Timers {}\n",
    "lib/side.js": b"window.side = 1;\n",
    "call/parts.js": b'import { Timers } from "../lib/timers.js";\nexport const a = 1, b = 2;\n',
    "app.css": b"body {}\n",
}


def test_specifiers_are_the_static_imports_and_re_exports() -> None:
    assert specifiers(ENTRY.decode()) == [
        "./lib/ws-client.js",
        "./call/parts.js",
        "./lib/side.js",
        "./call/parts.js",
    ]


def test_served_modules_import_their_neighbours_by_hashed_names() -> None:
    linked = link(FILES)
    entry = linked["call.js"][1].decode()
    client_hashed = linked["lib/ws-client.js"][0]
    parts_hashed = linked["call/parts.js"][0]
    assert f'from "./{client_hashed}";' in entry
    assert f"from './{parts_hashed}';" in entry  # the quote style is kept
    assert f'import "./{linked["lib/side.js"][0]}";' in entry
    assert f'export {{ c }} from "./{parts_hashed}";' in entry
    assert 'const text = "import nothing from here";' in entry
    timers_hashed = linked["lib/timers.js"][0].removeprefix("lib/")
    assert f'from "../lib/{timers_hashed}";' in linked["call/parts.js"][1].decode()
    assert f'from "./{timers_hashed}";' in linked["lib/ws-client.js"][1].decode()
    assert linked["app.css"][1] == FILES["app.css"]


def test_a_change_deep_in_the_graph_renames_every_module_that_leads_to_it() -> None:
    before = link(FILES)
    after = link({**FILES, "lib/timers.js": b"export class Timers { x() {} }\n"})
    for name in ("lib/timers.js", "lib/ws-client.js", "call/parts.js", "call.js"):
        assert before[name][0] != after[name][0], name
    assert before["lib/side.js"] == after["lib/side.js"]
    assert before["app.css"] == after["app.css"]


def test_closure_lists_every_import_once_dependencies_first() -> None:
    edges = graph(FILES)
    order = closure(edges, ("call.js",))
    assert sorted(order) == ["call/parts.js", "lib/side.js", "lib/timers.js", "lib/ws-client.js"]
    assert order.index("lib/timers.js") < order.index("lib/ws-client.js")
    assert closure(edges, ("lib/side.js",)) == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.js": b'import "./b.js";\n', "b.js": b'import "./a.js";\n'}, "cycle"),
        ({"a.js": b'import "./missing.js";\n'}, "does not exist"),
        ({"a.js": b'import x from "lodash";\n'}, "not relative"),
        ({"a.js": b'import x from "/static/b.js";\n', "b.js": b""}, "not relative"),
        ({"a.js": b'import x from "../../etc/passwd";\n'}, "leaves"),
    ],
)
def test_an_import_the_server_cannot_serve_is_an_error(
    files: dict[str, bytes], message: str
) -> None:
    with pytest.raises(ModuleError, match=message):
        link(files)


def test_lint_rules_catch_what_the_pages_promise_not_to_do() -> None:
    bad = """import { a } from "./a.js";
node.innerHTML = text;
eval("1");
const m = import("./lazy.js");
setTimeout(go, 10);
console.log("debug");
import * as everything from `./b.js`;
"""
    found = jslint.check_source("call/x.js", bad)
    lines = sorted(int(problem.split(":")[1]) for problem in found)
    assert lines == [2, 3, 4, 5, 6, 7], found
    assert jslint.check_source("lib/timers.js", "setTimeout(go, 1);\n") == []
    good = 'import { a } from "./a.js";\nexport function f(from) { return from; }\n'
    assert jslint.check_source("call/x.js", good) == []


def test_our_scripts_pass_the_lint() -> None:
    """The rules and the module graph (make lint also runs Node's parser over each file)."""
    assert jslint.problems(node=None) == []


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_node_finds_a_syntax_error() -> None:
    node = shutil.which("node")
    assert node is not None
    assert jslint.check_syntax(node, "ok.js", 'import { a } from "./a.js";\nexport { a };\n') == []
    found = jslint.check_syntax(node, "broken.js", "export const x = ;\n")
    assert found and found[0].startswith("broken.js: syntax error")
