"""Logs: one JSON line per request with its ids, and no clinical text anywhere.

A known marker goes through every free-text field of a consult's life (request,
messages, report, decision, close, a refused registration number, a validation error,
a failed login, a missing page) and must appear in no captured log line.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import Role, User
from server.ops.logs import JsonFormatter
from tests.consults.helpers import make_team
from tests.factories import login

MARKER = "QXMARKER7"
RRN = "850101-1234567"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record of every logger, formatted as production formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    # The test client's own logger prints the URLs it requests: that is not the server.
    handler.addFilter(lambda record: not record.name.startswith("httpx"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _text(n: int) -> str:
    return f"{MARKER} field {n} 김철수 {MARKER}"


def test_no_clinical_text_in_any_log_line(
    client: TestClient, other_client: TestClient, db: Session, captured: io.StringIO
) -> None:
    team = make_team(db)
    team.gp.name = f"{MARKER} 홍길동"
    db.add(team.gp)
    db.commit()
    gp, specialist = client, other_client
    login(gp, team.gp)
    login(specialist, team.specialist)
    body = {
        "specialty_id": team.specialty.id,
        "urgency": "soon",
        "mode": "async",
        "patient_chart_number": f"{MARKER}-chart",
        "patient_age": 67,
        "patient_sex": "female",
        "clinical_question": _text(1),
        "history": _text(2),
        "medication": _text(3),
        "vital_signs": _text(4),
    }
    created = gp.post("/api/consults", json=body)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    refused = gp.post("/api/consults", json={**body, "clinical_question": f"{MARKER} {RRN}"})
    assert refused.status_code == 422
    invalid = gp.post("/api/consults", json={**body, "patient_age": MARKER})
    assert invalid.status_code == 422
    assert specialist.post(
        f"/api/consults/{cid}/transitions", json={"to": "accepted", "reason": _text(5)}
    ).is_success
    assert specialist.post(
        f"/api/consults/{cid}/transitions", json={"to": "in_progress", "reason": _text(6)}
    ).is_success
    assert specialist.post(f"/api/consults/{cid}/messages", json={"body": _text(7)}).is_success
    assert gp.post(f"/api/consults/{cid}/messages", json={"body": f"{RRN}"}).status_code == 422
    report = {
        "findings": _text(8),
        "assessment": _text(9),
        "recommendation": _text(10),
        "follow_up": _text(11),
        "referral_needed": False,
        "referral_urgency": "none",
    }
    assert specialist.put(f"/api/consults/{cid}/report/draft", json=report).is_success
    assert specialist.post(f"/api/consults/{cid}/report/sign").is_success
    assert gp.post(
        f"/api/consults/{cid}/decisions", json={"action": "treated_locally", "note": _text(12)}
    ).is_success
    assert gp.post(
        f"/api/consults/{cid}/close",
        json={"outcome": "resolved_without_referral", "usefulness": 5, "note": _text(13)},
    ).is_success
    assert gp.get(f"/consults/{cid}", headers={"Accept": "text/html"}).status_code == 200
    assert gp.get(f"/consults/{MARKER}", headers={"Accept": "text/html"}).status_code == 404
    assert gp.get(f"/api/consults?q={MARKER}").status_code in {200, 422}
    stranger = TestClient(client.app)
    csrf = stranger.get("/api/auth/csrf").json()["csrf_token"]
    failed = stranger.post(
        "/api/auth/login",
        json={"email": f"{MARKER}@x.example", "password": MARKER},
        headers={"X-CSRF-Token": csrf},
    )
    assert failed.status_code == 401
    with gp.websocket_connect("/ws/user", headers={"Origin": "http://testserver"}) as socket:
        socket.send_text(json.dumps({"type": "subscribe", "after_id": 0, "note": MARKER}))
        socket.send_text(json.dumps({"type": "ping", "ts": 1}))
        assert socket.receive_json()["type"] in {"pong", "error", "notifications"}

    text = captured.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    assert MARKER not in text
    assert RRN not in text
    assert "김철수" not in text and "홍길동" not in text
    # One line per request, naming the route template, the user and the consult.
    requests = [line for line in lines if line.get("msg") == "request"]
    created_line = next(
        line
        for line in requests
        if line["route"] == "/api/consults" and line["method"] == "POST" and line["status"] == 201
    )
    assert created_line["user_id"] == str(team.gp.id)
    assert len(created_line["request_id"]) == 16
    sign_line = next(line for line in requests if line["route"].endswith("/report/sign"))
    assert sign_line["consult"] == cid
    assert sign_line["user_id"] == str(team.specialist.id)
    assert all("duration_ms" in line and "status" in line for line in requests)
    sockets = [line for line in lines if line.get("msg") == "socket session"]
    assert [line["route"] for line in sockets] == ["/ws/user"]
    assert sockets[0]["request_id"] and sockets[0]["duration_ms"] >= 0
    # Only known keys: nothing free-form rides along.
    allowed = {
        "ts",
        "level",
        "logger",
        "msg",
        "request_id",
        "user_id",
        "consult",
        "method",
        "route",
        "status",
        "duration_ms",
        "close_code",
        "kind",
        "count",
        "exc_type",
        "stack",
    }
    for line in lines:
        assert set(line) <= allowed, line


def test_an_exception_logs_its_class_not_its_message(captured: io.StringIO) -> None:
    try:
        raise ValueError(f"parameters: ({MARKER!r},)")
    except ValueError:
        logging.getLogger("dari.test").exception("failed")
    line = json.loads(captured.getvalue().strip().splitlines()[-1])
    assert line["exc_type"] == "ValueError" and line["msg"] == "failed"
    assert MARKER not in captured.getvalue()
    assert any("test_logs.py" in frame for frame in line["stack"])


def test_user_ids_not_names(db: Session) -> None:
    # A User carries a name and an email; the request line takes only its id.
    from server.ops.middleware import _user_id

    user = User(id=7, email="a@b.c", name=MARKER, password_hash="", role=Role.GP, organisation_id=1)
    assert _user_id({"state": {"auth": (user, None)}}) == "7"
    assert _user_id({"state": {}}) is None
