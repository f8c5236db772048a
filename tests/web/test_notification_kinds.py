"""The outbox's kinds and the browser's inbox agree: every kind the server writes is
registered (server/notifications/kinds.py), inbox.js rings for exactly the registered
ringing kinds, and every role's home page listens on /ws/user."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import Role
from server.notifications import kinds
from tests.factories import login, make_user

ROOT = Path(__file__).resolve().parents[2]
INBOX_JS = ROOT / "web" / "static" / "inbox.js"
# Calls whose third positional argument is a notification kind.
NOTIFYING = {"notify", "notify_many", "_notify_counterpart"}


def kinds_written() -> dict[str, list[str]]:
    """kind -> where it is written, for every notify-like call with a literal kind."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "server").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            if name not in NOTIFYING or len(node.args) < 3:
                continue
            kind = node.args[2]
            if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.setdefault(kind.value, []).append(where)
    return found


def js_list(name: str) -> set[str]:
    source = INBOX_JS.read_text(encoding="utf-8")
    match = re.search(rf"(?:const|let|var) {name} = \[([^\]]*)\];", source)
    assert match, f"inbox.js has no {name}"
    return set(re.findall(r'"([^"]+)"', match.group(1)))


def test_every_kind_the_server_writes_is_registered() -> None:
    written = kinds_written()
    # The scan sees the known writers (it would find nothing if the calls changed shape).
    assert {"consult.requested", "consult.message", "urgent.ring", "appointment.booked"} <= set(
        written
    )
    unregistered = {kind: where for kind, where in written.items() if kind not in kinds.KINDS}
    assert unregistered == {}
    assert set(kinds.KINDS) - set(written) == set(), "registered kinds nobody writes"


def test_inbox_rings_for_the_registered_kinds() -> None:
    assert js_list("RING_ALWAYS") == kinds.RING_ALWAYS
    assert js_list("RING_IF_URGENT") == kinds.RING_IF_URGENT
    assert js_list("STOP_RING") == kinds.STOP_RING
    for group in (kinds.RING_ALWAYS, kinds.RING_IF_URGENT, kinds.STOP_RING):
        assert group <= set(kinds.KINDS)


def test_ringing_payloads_carry_what_the_inbox_reads() -> None:
    """Kinds that ring when urgent carry the urgency; every ringing or stopping kind
    names its consult ("consult" or "consult_id")."""
    sources = {path: path.read_text(encoding="utf-8") for path in (ROOT / "server").rglob("*.py")}
    written = kinds_written()  # parses every server module: once, not once per kind
    for kind in kinds.RING_IF_URGENT | kinds.RING_ALWAYS | kinds.STOP_RING:
        for where in written[kind]:
            file, line = where.rsplit(":", 1)
            text = sources[ROOT / file].splitlines()
            call = "\n".join(text[int(line) - 1 : int(line) + 8])
            assert '"consult"' in call or '"consult_id"' in call or "payload" in call, where
            if kind in kinds.RING_IF_URGENT:
                assert '"urgency"' in call, where


def test_every_home_page_listens_for_notifications(client: TestClient, db: Session) -> None:
    rings: dict[Role, str] = {}
    for role in (Role.GP, Role.SPECIALIST, Role.ADMIN):
        client.cookies.clear()
        login(client, make_user(db, role))
        page = client.get("/?lang=en", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert 'id="live"' in page.text and 'data-ws="/ws/user"' in page.text
        assert "/static/inbox." in page.text
        ring = re.search(r'data-ring="([^"]+)"', page.text)
        assert ring is not None
        rings[role] = ring.group(1)
    # The administrator is rung for an unanswered urgent consult, not asked to answer it.
    assert rings[Role.GP] == rings[Role.SPECIALIST] != rings[Role.ADMIN]
