"""The note's WebSocket through the app: access, editing, acknowledgement, reconnect."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session
from starlette.websockets import WebSocketDisconnect

from server.accounts.models import Role
from server.notes.ot import Client, TextOperation
from tests.factories import login, make_user
from tests.notes.factories import consult_with_pair

ORIGIN = {"origin": "http://testserver"}


def ws_url(public_id: str) -> str:
    return f"/notes/ws/{public_id}"


def test_participant_joins_and_gets_the_snapshot(client: TestClient, db: Session) -> None:
    consult, gp, _ = consult_with_pair(db)
    login(client, gp)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        ws.send_json({"type": "join", "client": "c1", "rev": None})
        first = ws.receive_json()
        assert first == {"type": "snapshot", "rev": 0, "text": ""}
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["frozen"] is False


def test_user_of_another_clinic_is_refused_before_any_content(
    client: TestClient, db: Session
) -> None:
    consult, _, _ = consult_with_pair(db)
    stranger = make_user(db, Role.GP)
    login(client, stranger)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4403


class Editor:
    """A test editor: the OT client state machine on a TestClient WebSocket."""

    def __init__(self, ws: Any, client_id: str, client: Client | None = None) -> None:
        self.ws = ws
        self.client = client or Client(client_id)
        self.frozen = False
        self.errors: list[dict[str, Any]] = []

    def join(self) -> None:
        fresh = self.client.revision == 0 and not self.client.doc
        self.ws.send_json(
            {
                "type": "join",
                "client": self.client.client_id,
                "rev": None if fresh else self.client.revision,
            }
        )
        while True:
            message = self.ws.receive_json()
            if message["type"] == "ready":
                self.frozen = message["frozen"]
                break
            self.handle(message)
        pending = self.client.pending_message()
        if pending is not None:
            self.ws.send_json(pending)

    def handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "snapshot":
            self.client.doc, self.client.revision = message["text"], message["rev"]
        elif message["type"] == "op":
            reply = self.client.receive(message)
            if reply is not None:
                self.ws.send_json(reply)
        elif message["type"] == "error":
            self.errors.append(message)

    def type(self, at: int, text: str) -> None:
        doc = self.client.doc
        op = TextOperation().retain(at).insert(text).retain(len(doc) - at)
        message = self.client.local(op)
        if message is not None and self.ws is not None:
            self.ws.send_json(message)

    def pump_until(self, done: Any, limit: int = 500) -> None:
        for _ in range(limit):
            if done():
                return
            self.handle(self.ws.receive_json())
        raise AssertionError("condition not reached")


def test_two_editors_converge_and_every_update_is_stored(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    consult, gp, specialist = consult_with_pair(db)
    login(client, gp)
    login(other_client, specialist)
    url = ws_url(consult.public_id)
    with (
        client.websocket_connect(url, headers=ORIGIN) as ws_a,
        other_client.websocket_connect(url, headers=ORIGIN) as ws_b,
    ):
        a, b = Editor(ws_a, "gp1"), Editor(ws_b, "sp1")
        a.join()
        b.join()
        for i in range(5):
            a.type(len(a.client.doc), f"가{i}")
            b.type(0, f"B{i}")
        a.pump_until(lambda: a.client.state == "synchronized")
        b.pump_until(lambda: b.client.state == "synchronized")
        state = client.get(f"/api/consults/{consult.public_id}/notes").json()
        a.pump_until(lambda: a.client.revision == state["rev"])
        b.pump_until(lambda: b.client.revision == state["rev"])
        assert a.client.doc == b.client.doc == state["text"]
        # Edits made while one was in flight were composed: fewer revisions than keystrokes.
        assert 2 <= state["rev"] <= 10 and state["frozen"] is False
        for i in range(5):
            assert f"가{i}" in state["text"] and f"B{i}" in state["text"]


def test_reconnect_after_offline_edits_on_both_sides(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    consult, gp, specialist = consult_with_pair(db)
    login(client, gp)
    login(other_client, specialist)
    url = ws_url(consult.public_id)
    with other_client.websocket_connect(url, headers=ORIGIN) as ws_b:
        b = Editor(ws_b, "sp2")
        b.join()
        with client.websocket_connect(url, headers=ORIGIN) as ws_a:
            a = Editor(ws_a, "gp2")
            a.join()
            a.type(0, "history: chest pain. ")
            a.pump_until(lambda: a.client.state == "synchronized")
        # The GP's link drops: edits stay local, one of them may be half-sent.
        a.ws = None
        a.type(len(a.client.doc), "ECG normal. ")
        a.type(0, "[GP] ")
        b.pump_until(lambda: b.client.revision == 1)
        b.type(len(b.client.doc), "plan: troponin. ")
        b.type(0, "[SP] ")
        b.pump_until(lambda: b.client.state == "synchronized")
        with client.websocket_connect(url, headers=ORIGIN) as ws_a2:
            a.ws = ws_a2
            a.join()
            a.pump_until(lambda: a.client.state == "synchronized")
            b.pump_until(lambda: b.client.revision == a.client.revision)
        assert a.client.doc == b.client.doc
        for piece in (
            "history: chest pain. ",
            "ECG normal. ",
            "[GP] ",
            "plan: troponin. ",
            "[SP] ",
        ):
            assert a.client.doc.count(piece) == 1
        state = other_client.get(f"/api/consults/{consult.public_id}/notes").json()
        assert state["text"] == a.client.doc


def test_a_resent_operation_is_applied_once(client: TestClient, db: Session) -> None:
    consult, gp, _ = consult_with_pair(db)
    login(client, gp)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        editor = Editor(ws, "gp3")
        editor.join()
        message = editor.client.local(TextOperation().insert("once"))
        assert message is not None
        ws.send_json(message)
        ws.send_json(message)  # the same seq again, as after a reconnect
        editor.pump_until(lambda: editor.client.state == "synchronized")
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # nothing else came back for the resend
    state = client.get(f"/api/consults/{consult.public_id}/notes").json()
    assert state["text"] == "once" and state["rev"] == 1


def test_bad_operation_is_refused_and_nothing_is_written(client: TestClient, db: Session) -> None:
    consult, gp, _ = consult_with_pair(db)
    login(client, gp)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        editor = Editor(ws, "gp4")
        editor.join()
        ws.send_json({"type": "op", "rev": 0, "seq": 1, "op": [5, "x"]})
        error = ws.receive_json()
        assert error["type"] == "error" and error["code"] == "invalid_operation"
    assert client.get(f"/api/consults/{consult.public_id}/notes").json()["rev"] == 0


def test_wrong_origin_is_refused(client: TestClient, db: Session) -> None:
    consult, gp, _ = consult_with_pair(db)
    login(client, gp)
    headers = {"origin": "https://evil.example"}
    with client.websocket_connect(ws_url(consult.public_id), headers=headers) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4403


def test_anonymous_is_refused(client: TestClient, db: Session) -> None:
    consult, _, _ = consult_with_pair(db)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4403


def test_presence_tells_the_others_who_is_typing_and_where(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    consult, gp, specialist = consult_with_pair(db)
    login(client, gp)
    login(other_client, specialist)
    url = ws_url(consult.public_id)
    with (
        client.websocket_connect(url, headers=ORIGIN) as ws_a,
        other_client.websocket_connect(url, headers=ORIGIN) as ws_b,
    ):
        Editor(ws_a, "gp5").join()
        Editor(ws_b, "sp5").join()
        ws_a.send_json({"type": "presence", "typing": True, "cursor": [0, 0], "rev": 0})
        while True:
            message = ws_b.receive_json()
            if message["type"] == "presence" and message["client"] == "gp5" and "cursor" in message:
                break
        assert message["user"] == gp.name and message["typing"] is True
        assert message["cursor"] == [0, 0]


def test_signing_freezes_the_note_for_open_editors(
    client: TestClient, db: Session, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.db import engine_for
    from server.notes import service
    from signaling import notes as router

    monkeypatch.setattr(router, "RECHECK_SECONDS", 0.0)

    consult, gp, specialist = consult_with_pair(db)
    login(client, gp)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        editor = Editor(ws, "gp6")
        editor.join()
        with Session(engine_for(database_url)) as tx:
            service.freeze(tx, consult, actor_id=specialist.id)
            tx.commit()
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}
        assert ws.receive_json()["code"] == "note_frozen"
        ws.send_json({"type": "op", "rev": 0, "seq": 1, "op": ["late"]})
        refused = ws.receive_json()
        assert refused["type"] == "error" and refused["code"] == "note_frozen"
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        rejoined = Editor(ws, "gp7")
        rejoined.join()
        assert rejoined.frozen is True and rejoined.client.doc == ""


def test_logging_out_closes_the_open_note(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signaling import notes as router

    monkeypatch.setattr(router, "RECHECK_SECONDS", 0.0)
    consult, gp, _ = consult_with_pair(db)
    login(client, gp)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        Editor(ws, "gp8").join()
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # still signed in
        assert client.post("/api/auth/logout").status_code == 204
        ws.send_json({"type": "ping"})
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
    assert closed.value.code == 4403


def test_opening_a_note_compacts_its_old_log(client: TestClient, db: Session) -> None:
    from datetime import timedelta

    from sqlalchemy import update
    from sqlmodel import col, select

    from server.clock import utcnow
    from server.notes.models import NoteUpdate, SharedNote

    consult, gp, _ = consult_with_pair(db)
    login(client, gp)
    url = ws_url(consult.public_id)
    with client.websocket_connect(url, headers=ORIGIN) as ws:
        editor = Editor(ws, "gp9")
        editor.join()
        for word in ("old ", "words "):
            editor.type(len(editor.client.doc), word)
            editor.pump_until(lambda: editor.client.state == "synchronized")
    note = db.exec(select(SharedNote).where(SharedNote.consult_id == consult.id)).one()
    db.execute(
        update(NoteUpdate)
        .where(col(NoteUpdate.note_id) == note.id)
        .values(created_at=utcnow() - timedelta(days=2))
    )
    db.commit()
    with client.websocket_connect(url, headers=ORIGIN) as ws:
        Editor(ws, "gp10").join()
    rows = db.exec(select(NoteUpdate).where(NoteUpdate.note_id == note.id)).all()
    assert rows == []
    assert client.get(f"/api/consults/{consult.public_id}/notes").json() == {
        "rev": 2,
        "text": "old words ",
        "frozen": False,
    }


def test_malformed_and_deep_json_get_an_error_frame_and_the_socket_lives_on(
    client: TestClient, db: Session
) -> None:
    consult, gp, _ = consult_with_pair(db)
    login(client, gp)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        editor = Editor(ws, "gp11")
        editor.join()
        for raw, code in (
            ("{not json", "bad_frame"),
            ("[" * 100_000 + "]" * 100_000, "bad_frame"),  # a RecursionError in json.loads
            ('{"a":' * 50 + "1" + "}" * 50, "bad_frame"),
            ("[1, 2]", "bad_frame"),
            ('{"type": "launch"}', "unknown_message"),
        ):
            ws.send_text(raw)
            error = ws.receive_json()
            assert error["type"] == "error" and error["code"] == code, raw[:20]
        # Still an editor: an operation goes through.
        editor.type(0, "still here")
        editor.pump_until(lambda: editor.client.state == "synchronized")
    assert client.get(f"/api/consults/{consult.public_id}/notes").json()["text"] == "still here"


def test_a_flood_is_rate_limited_then_closed(client: TestClient, db: Session) -> None:
    consult, gp, _ = consult_with_pair(db)
    login(client, gp)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        Editor(ws, "gp12").join()
        codes: list[str] = []
        with pytest.raises(WebSocketDisconnect) as closed:
            for _ in range(1000):
                ws.send_text('{"type": "presence", "typing": false}')
            while True:
                message = ws.receive_json()
                if message["type"] == "error":
                    codes.append(message["code"])
    assert "rate_limited" in codes
    assert closed.value.code == 1008


def test_empty_operation_is_acknowledged_without_a_revision(
    client: TestClient, db: Session
) -> None:
    consult, gp, _ = consult_with_pair(db)
    login(client, gp)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        editor = Editor(ws, "gp13")
        editor.join()
        editor.type(0, "abc")
        editor.pump_until(lambda: editor.client.state == "synchronized")
        ws.send_json({"type": "op", "rev": 1, "seq": 2, "op": [3]})
        assert ws.receive_json() == {"type": "ack", "rev": 1, "seq": 2, "client": "gp13"}
    assert client.get(f"/api/consults/{consult.public_id}/notes").json()["rev"] == 1


def test_a_ghost_whose_process_died_is_announced_gone(
    client: TestClient, other_client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor on a process that died leaves a presence entry nobody refreshes: the next
    heartbeat of anyone on the note finds it expired and tells everyone it left."""
    import asyncio

    from signaling import notes

    monkeypatch.setattr(notes, "RECHECK_SECONDS", 0.0)
    consult, gp, specialist = consult_with_pair(db)
    login(client, gp)
    login(other_client, specialist)
    url = ws_url(consult.public_id)
    app = client.app
    with client.websocket_connect(url, headers=ORIGIN) as ws_a:
        Editor(ws_a, "gp14").join()
        service: Any = app.state.notes  # type: ignore[attr-defined]
        note_id = next(iter(service.editors))
        broker = service.signaling.hub.broker
        # The dead process's editor: its entry expired a moment ago.
        record = {"type": "presence", "client": "ghost", "user": specialist.name}
        asyncio.run(broker.presence_put(f"notes:{note_id}", "ghost", record, -1.0))
        ws_a.send_json({"type": "ping"})
        seen = []
        while True:
            message = ws_a.receive_json()
            seen.append(message)
            if message["type"] == "leave":
                break
        assert message == {"type": "leave", "client": "ghost"}
        # And a newcomer is not told about the ghost.
        with other_client.websocket_connect(url, headers=ORIGIN) as ws_b:
            ws_b.send_json({"type": "join", "client": "sp14", "rev": None})
            kinds = []
            while True:
                message = ws_b.receive_json()
                kinds.append(message)
                if message["type"] == "ready":
                    break
            assert all(m.get("client") != "ghost" for m in kinds)
            assert any(m.get("client") == "gp14" and m["type"] == "presence" for m in kinds)
        # The specialist closed the page: the GP hears that they left.
        while True:
            message = ws_a.receive_json()
            if message["type"] == "leave":
                break
        assert message["client"] == "sp14"


def test_fast_writes_cross_snapshots_and_give_way_to_another_process(
    app: FastAPI,
    client: TestClient,
    db: Session,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keystrokes of an up-to-date writer take the fast path (its own connection, one
    conditional write); the text reaches the row every SNAPSHOT_EVERY revisions; an
    update written meanwhile by another process makes the fast write change nothing,
    and the general path transforms the keystroke instead."""
    from sqlmodel import select

    from server.db import engine_for
    from server.notes import service
    from server.notes.models import SharedNote

    monkeypatch.setattr(service, "SNAPSHOT_EVERY", 4)
    consult, gp, specialist = consult_with_pair(db)
    login(client, gp)
    with client.websocket_connect(ws_url(consult.public_id), headers=ORIGIN) as ws:
        editor = Editor(ws, "gpfast")
        editor.join()
        for i in range(9):
            editor.type(len(editor.client.doc), str(i))
            editor.pump_until(lambda: editor.client.state == "synchronized")
        note = db.exec(select(SharedNote).where(SharedNote.consult_id == consult.id)).one()
        assert (note.revision, note.text_revision, note.text) == (9, 8, "01234567")
        assert app.state.notes_gate._writer is not None  # the fast path was taken
        # "Another process" appends revision 10 at the start; this process still
        # believes the note is at 9.
        with Session(engine_for(database_url)) as other:
            service.apply(
                other,
                consult.id or 0,
                author_id=specialist.id or 0,
                client_id="elsewhere",
                client_seq=1,
                base_revision=9,
                op_json=[">", 9],
                max_chars=1000,
            )
            other.commit()
        editor.type(len(editor.client.doc), "!")
        editor.pump_until(lambda: editor.client.state == "synchronized")
        editor.pump_until(lambda: editor.client.revision == 11)
        assert editor.client.doc == ">012345678!"
    state = client.get(f"/api/consults/{consult.public_id}/notes").json()
    assert state == {"rev": 11, "text": ">012345678!", "frozen": False}
