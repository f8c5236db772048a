"""An asynchronous (written) consult end to end through the API."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource
from sqlmodel import Session, col, select

from server.audit.models import AuditEvent
from server.consults.models import ConsultRequest
from server.notifications.models import Notification
from tests.consults.helpers import make_team, png_bytes, resources
from tests.factories import login


def new_request(specialty_id: int, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "specialty_id": specialty_id,
        "urgency": "soon",
        "mode": "async",
        "patient_chart_number": "C-2024-0042",
        "patient_age": 67,
        "patient_sex": "female",
        "clinical_question": "Rash on both shins for 3 weeks, not itchy. Photo attached.",
        "history": "Type 2 diabetes since 2015. Seen 2024-01-15.",
        "medication": "metformin 500 mg bid",
        "vital_signs": "BP 130/80, T 36.8",
    }
    body.update(overrides)
    return body


def test_async_consult_end_to_end(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    team = make_team(db)
    gp, specialist = client, other_client
    login(gp, team.gp)
    login(specialist, team.specialist)

    created = gp.post("/api/consults", json=new_request(team.specialty.id or 0))
    assert created.status_code == 201, created.text
    consult = created.json()
    cid = consult["id"]
    assert consult["status"] == "requested" and consult["mode"] == "async"
    assert consult["due_at"] is not None and consult["overdue"] is False

    photo = gp.post(
        f"/api/consults/{cid}/attachments?filename=shin.png",
        content=png_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert photo.status_code == 201, photo.text
    assert photo.json()["kind"] == "png" and photo.json()["has_thumbnail"]
    photo_url = photo.json()["url"]

    # The pool specialist sees the triage view: the request and the file list, no bytes.
    inbox = specialist.get("/api/consults").json()
    assert cid in [item["id"] for item in inbox]
    triage = specialist.get(f"/api/consults/{cid}").json()
    assert triage["access"] == "pool"
    assert triage["attachments"][0]["url"] is None and triage["messages"] is None
    assert specialist.get(photo_url).status_code == 404
    assert triage["allowed_transitions"] == ["accepted", "scheduled", "declined"]
    booked = specialist.post(f"/api/consults/{cid}/transitions", json={"to": "scheduled"})
    assert booked.status_code == 422 and booked.json()["error"]["code"] == "use_booking"

    accepted = specialist.post(f"/api/consults/{cid}/transitions", json={"to": "accepted"})
    assert accepted.status_code == 200, accepted.text
    started = specialist.post(
        f"/api/consults/{cid}/transitions", json={"to": "in_progress", "reason": "written"}
    )
    assert started.status_code == 200

    image = specialist.get(photo_url)
    assert image.status_code == 200 and image.content == png_bytes()
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["content-disposition"].startswith("inline")
    assert (
        specialist.get(photo_url + "?download=1")
        .headers["content-disposition"]
        .startswith("attachment")
    )
    thumb = specialist.get(photo_url + "/thumbnail")
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"

    # The written exchange: a question back to the GP and the answer, threaded.
    question = specialist.post(
        f"/api/consults/{cid}/messages", json={"body": "Any new medication in the last month?"}
    )
    assert question.status_code == 201
    answer = gp.post(
        f"/api/consults/{cid}/messages",
        json={"body": "Started sitagliptin 4 weeks ago.", "reply_to_id": question.json()["id"]},
    )
    assert answer.status_code == 201 and answer.json()["reply_to_id"] == question.json()["id"]
    refused = gp.post(f"/api/consults/{cid}/messages", json={"body": "id 850101-1234567"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "registration_number_refused"
    thread = gp.get(f"/api/consults/{cid}/messages").json()
    assert [m["body"] for m in thread] == [
        "Any new medication in the last month?",
        "Started sitagliptin 4 weeks ago.",
    ]

    # Written → video and back, on the same consult.
    assert (
        gp.post(f"/api/consults/{cid}/mode", json={"mode": "video", "reason": "see it"}).json()[
            "to_value"
        ]
        == "video"
    )
    assert (
        specialist.post(
            f"/api/consults/{cid}/mode", json={"mode": "async", "reason": "call failed"}
        ).status_code
        == 200
    )

    # Report: autosave twice, sign, edit refused, amend, sign again.
    draft = {
        "findings": "Purpuric papules",
        "assessment": "Drug-induced vasculitis?",
        "recommendation": "Stop sitagliptin; review in 2 weeks",
        "follow_up": "2 weeks",
        "referral_needed": False,
        "referral_urgency": "none",
    }
    assert specialist.put(f"/api/consults/{cid}/report/draft", json=draft).status_code == 200
    draft["findings"] = "Palpable purpura on both shins"
    saved = specialist.put(f"/api/consults/{cid}/report/draft", json=draft)
    assert saved.json()["version"] == 1 and saved.json()["signed_at"] is None
    assert gp.put(f"/api/consults/{cid}/report/draft", json=draft).status_code == 403
    signed = specialist.post(f"/api/consults/{cid}/report/sign")
    assert signed.status_code == 200 and len(signed.json()["content_hash"]) == 64
    edit = specialist.put(f"/api/consults/{cid}/report/draft", json=draft)
    assert edit.status_code == 409 and edit.json()["error"]["code"] == "report_signed"
    amend = specialist.post(f"/api/consults/{cid}/report/amend", json={"reason": "dose typo"})
    assert amend.status_code == 201 and amend.json()["version"] == 2
    draft["recommendation"] = "Stop sitagliptin; review in 10 days"
    specialist.put(f"/api/consults/{cid}/report/draft", json=draft)
    assert specialist.post(f"/api/consults/{cid}/report/sign").status_code == 200
    history = gp.get(f"/api/consults/{cid}/reports").json()
    assert [(r["version"], r["amends_id"]) for r in history] == [
        (1, None),
        (2, history[0]["id"]),
    ]
    assert history[0]["findings"] == "Palpable purpura on both shins"

    # The GP's own part, then closing with the outcome.
    decision = gp.post(
        f"/api/consults/{cid}/decisions", json={"action": "treated_locally", "note": "stopped"}
    )
    assert decision.status_code == 201 and len(decision.json()["content_hash"]) == 64
    closed = gp.post(
        f"/api/consults/{cid}/close",
        json={"outcome": "resolved_without_referral", "usefulness": 5},
    )
    assert closed.status_code == 200, closed.text
    record = gp.get(f"/api/consults/{cid}").json()
    assert record["status"] == "completed" and record["outcome"] == "resolved_without_referral"
    assert record["first_response_at"] and record["report_signed_at"] and record["completed_at"]
    assert [e["to_value"] for e in record["events"] if e["kind"] == "transition"] == [
        "draft",
        "requested",
        "accepted",
        "in_progress",
        "report_pending",
        "completed",
    ]

    bundle = gp.get(f"/api/consults/{cid}/fhir")
    assert bundle.headers["content-type"].startswith("application/fhir+json")
    parsed = Bundle.model_validate_json(bundle.content)
    types = {resource.__resource_type__ for resource in resources(parsed, Resource)}
    assert {
        "ServiceRequest",
        "Encounter",
        "Communication",
        "DiagnosticReport",
        "Practitioner",
        "Organization",
        "Patient",
        "DocumentReference",
    } <= types

    stored = db.exec(select(ConsultRequest).where(ConsultRequest.public_id == cid)).one()
    actions = db.exec(select(AuditEvent.action).where(AuditEvent.object_id == cid)).all()
    for action in (
        "consult.create",
        "consult.read",
        "consult.transition",
        "consult.message",
        "consult.export",
        "report.read",
        "consult.close",
    ):
        assert action in actions
    attachment_reads = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "attachment.read",
            AuditEvent.organisation_id == stored.organisation_id,
        )
    ).all()
    assert any(json.loads(e.detail)["consult"] == cid for e in attachment_reads)
    told = db.exec(
        select(Notification.kind).where(
            Notification.user_id == team.gp.id, col(Notification.kind) == "consult.message"
        )
    ).all()
    assert told


def test_bad_request_changes_nothing(client: TestClient, db: Session) -> None:
    team = make_team(db)
    login(client, team.gp)
    before = len(db.exec(select(ConsultRequest.id)).all())
    bad = client.post(
        "/api/consults", json=new_request(team.specialty.id or 0, history="RRN 8501011234567")
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "history"
    assert (
        client.post(
            "/api/consults", json=new_request(team.specialty.id or 0, patient_age=-1)
        ).status_code
        == 422
    )
    assert len(db.exec(select(ConsultRequest.id)).all()) == before


def test_draft_then_submit_tells_the_pool(client: TestClient, db: Session) -> None:
    team = make_team(db)
    login(client, team.gp)
    draft = client.post(
        "/api/consults", json=new_request(team.specialty.id or 0, submit=False)
    ).json()
    assert draft["status"] == "draft" and draft["requested_at"] is None
    edited = client.patch(f"/api/consults/{draft['id']}", json={"urgency": "urgent"})
    assert edited.json()["urgency"] == "urgent"
    refused = client.patch(f"/api/consults/{draft['id']}", json={"history": "8501011234567"})
    assert refused.status_code == 422
    sent = client.post(f"/api/consults/{draft['id']}/transitions", json={"to": "requested"})
    assert sent.status_code == 200
    told = db.exec(
        select(Notification).where(
            Notification.user_id == team.specialist.id, Notification.kind == "consult.requested"
        )
    ).all()
    assert any(json.loads(n.payload)["consult"] == draft["id"] for n in told)
    assert client.patch(f"/api/consults/{draft['id']}", json={"urgency": "soon"}).status_code == 409
