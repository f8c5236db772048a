"""The urgent path through the pages: the new-request form rings the region's on-call
roster (not the whole specialty), the ring is state read from /urgent/panel, the inbox's
accept goes through the ring (one winner, the others see who took it), the GP's
progress, the administrator's escalation view and its actions, overdue alerts."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import time, timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.accounts.models import Organisation, OrgKind, Role, Specialty, User
from server.audit.models import AuditEvent
from server.clock import utcnow
from server.consults.models import ConsultRequest, ConsultStatus
from server.notifications.models import Notification
from server.scheduling import urgent
from server.scheduling.models import RingLevel, RuleKind, UrgentRequest, UrgentStatus
from server.settings import Settings
from tests.conftest import make_client
from tests.factories import login, make_organisation, make_region, make_specialty, make_user
from tests.scheduling.factories import make_hospital, make_rule, make_specialist

HTML = {"Accept": "text/html"}
QUESTION = "Crushing chest pain for 40 minutes\nST elevation in II, III, aVF; BP 90/60"
HISTORY = "Smoker, 30 pack-years; father died of MI at 52"


@dataclass
class World:
    specialty: Specialty
    clinic: Organisation
    gp: User
    oncall: User  # regional, on call all week
    offduty: User  # regional, never on call
    national: User  # another region, on call all week
    admin: User  # the GP's region's hub administrator
    far_admin: User  # another region's hub administrator


def on_call_all_week(db: Session, specialist: User) -> None:
    for weekday in range(7):
        make_rule(
            db, specialist, weekday, time(0, 0), time(0, 0), kind=RuleKind.ONCALL, slot_minutes=60
        )


def make_world(db: Session) -> World:
    specialty = make_specialty(db)
    home, far = make_region(db), make_region(db)
    hub, far_hub = make_hospital(db, home), make_hospital(db, far)
    clinic = make_organisation(db, kind=OrgKind.CLINIC, region=home)
    world = World(
        specialty=specialty,
        clinic=clinic,
        gp=make_user(db, Role.GP, organisation=clinic),
        oncall=make_specialist(db, hub, specialty),
        offduty=make_specialist(db, hub, specialty),
        national=make_specialist(db, far_hub, specialty),
        admin=make_user(db, Role.ADMIN, organisation=hub),
        far_admin=make_user(db, Role.ADMIN, organisation=far_hub),
    )
    on_call_all_week(db, world.oncall)
    on_call_all_week(db, world.national)
    return world


def send_urgent(client: TestClient, world: World) -> str:
    response = client.post(
        "/consults/new",
        data={
            "specialty_id": str(world.specialty.id),
            "patient_chart_number": "C-0152",
            "patient_age": "58",
            "patient_sex": "male",
            "clinical_question": QUESTION,
            "history": HISTORY,
            "urgency": "urgent",
            "mode": "video",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def kinds_for(db: Session, user: User) -> list[str]:
    db.expire_all()
    return [
        n.kind for n in db.exec(select(Notification).where(Notification.user_id == user.id)).all()
    ]


def urgent_of(db: Session, public_id: str) -> UrgentRequest:
    db.expire_all()
    consult = db.exec(select(ConsultRequest).where(ConsultRequest.public_id == public_id)).one()
    item = urgent.for_consult(db, consult.id or 0)
    assert item is not None
    return item


def test_the_page_rings_the_regions_on_call_roster_only(
    app: FastAPI, client: TestClient, other_client: TestClient, db: Session
) -> None:
    world = make_world(db)
    login(client, world.gp)
    public_id = send_urgent(client, world)
    item = urgent_of(db, public_id)
    assert item.level == RingLevel.REGIONAL
    assert urgent.rung_ids(db, item.id or 0) == [world.oncall.id]
    assert "urgent.ring" in kinds_for(db, world.oncall)
    assert "urgent.ring" not in kinds_for(db, world.offduty)
    assert "urgent.ring" not in kinds_for(db, world.national)

    login(other_client, world.oncall)
    panel = other_client.get("/urgent/panel").text
    assert f'data-ring="{public_id}"' in panel
    # The ring names the consult: age, sex, the question's first line; not the history.
    assert "58" in panel and "Crushing chest pain for 40 minutes" in panel
    assert "ST elevation" not in panel and "pack-years" not in panel
    assert 'data-pool-count="1"' in panel
    # The API reads the same state.
    state = other_client.get("/api/urgent/rings").json()
    assert [r["consult_id"] for r in state["ringing"]] == [public_id]
    assert state["ringing"][0]["question"] == "Crushing chest pain for 40 minutes"
    assert state["pool_count"] == 1 and state["alerts"] == []

    off = make_client(app)
    login(off, world.offduty)
    panel = off.get("/urgent/panel").text
    assert "data-ring=" not in panel and 'data-ringing="0"' in panel
    assert 'data-pool-count="1"' in panel  # in the pool's list, not rung

    # The GP's page says who is rung, since when, and what comes next (Korean by default).
    progress = client.get(f"/consults/{public_id}/urgent-progress").text
    assert world.oncall.name in progress and 'data-ringing="1"' in progress
    assert "is-now" in progress and "is-next" in progress
    assert world.admin.name in progress  # the regional hub's administrators come next
    page = client.get(f"/consults/{public_id}", headers=HTML).text
    assert 'id="urgent-progress"' in page


def test_inbox_accept_has_one_winner_and_the_others_see_who(
    app: FastAPI, client: TestClient, db: Session
) -> None:
    world = make_world(db)
    login(client, world.gp)
    public_id = send_urgent(client, world)
    item = urgent_of(db, public_id)
    others = [make_specialist(db, make_hospital(db), world.specialty) for _ in range(4)]
    for person in others:
        urgent.ring_named(db, world.admin, item.id or 0, person.id or 0)
    db.commit()
    people = [world.oncall, *others]
    clients = [make_client(app) for _ in people]
    for c, person in zip(clients, people, strict=True):
        login(c, person)
    outcomes: list[str] = []
    barrier = threading.Barrier(len(people))

    def press(c: TestClient) -> None:
        barrier.wait()
        response = c.post(f"/urgent/{public_id}/accept", headers=HTML, follow_redirects=False)
        outcomes.append(f"{response.status_code} {response.headers.get('location')}")

    threads = [threading.Thread(target=press, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted(
        [f"303 /consults/{public_id}"] + [f"303 /urgent/{public_id}"] * 4
    )
    item = urgent_of(db, public_id)
    winner = db.get(User, item.accepted_by_id)
    assert item.status == UrgentStatus.ACCEPTED and winner is not None
    for c, person in zip(clients, people, strict=True):
        if person.id == winner.id:
            assert f'data-mine="{public_id}"' in c.get("/urgent/panel").text
            continue
        page = c.get(f"/urgent/{public_id}", headers=HTML)
        assert page.status_code == 200 and winner.name in page.text
        panel = c.get("/urgent/panel").text
        assert f'data-taken="{public_id}"' in panel and winner.name in panel
        assert "data-ring=" not in panel
        assert "urgent.taken" in kinds_for(db, person)
    progress = client.get(f"/consults/{public_id}/urgent-progress").text
    assert winner.name in progress and 'data-ringing="0"' in progress
    for c in clients:
        c.close()


def test_pool_accept_of_an_urgent_consult_goes_through_the_ring(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    world = make_world(db)
    login(client, world.gp)
    public_id = send_urgent(client, world)
    login(other_client, world.offduty)  # in the pool, not rung
    response = other_client.post(
        f"/consults/{public_id}/transition",
        data={"to": "accepted"},
        headers=HTML,
        follow_redirects=False,
    )
    assert response.status_code == 303
    item = urgent_of(db, public_id)
    assert item.status == UrgentStatus.ACCEPTED and item.accepted_by_id == world.offduty.id
    assert "urgent.taken" in kinds_for(db, world.oncall)


def test_escalation_alerts_the_hub_admin_who_rings_a_named_specialist(
    app: FastAPI, client: TestClient, other_client: TestClient, db: Session
) -> None:
    world = make_world(db)
    login(client, world.gp)
    public_id = send_urgent(client, world)
    login(other_client, world.admin)
    alert = f'data-alert="{urgent_of(db, public_id).id}"'
    assert alert not in other_client.get("/urgent/panel").text  # not yet escalated
    assert urgent.escalate_stale_rings(db, utcnow() + timedelta(minutes=11)) != []
    db.commit()
    item = urgent_of(db, public_id)
    assert item.level == RingLevel.NATIONAL
    assert set(urgent.rung_ids(db, item.id or 0)) == {world.oncall.id, world.national.id}
    assert "urgent.escalated" in kinds_for(db, world.admin)
    assert "urgent.escalated" not in kinds_for(db, world.far_admin)

    panel = other_client.get("/urgent/panel").text
    assert alert in panel and "/admin/urgent#u-" in panel
    view = other_client.get("/admin/urgent", headers=HTML)
    assert view.status_code == 200
    assert f'id="u-{item.id}"' in view.text
    assert world.oncall.name in view.text and world.national.name in view.text  # history
    assert "pack-years" not in view.text  # triage only
    assert f'value="{world.offduty.id}"' in view.text  # can be rung by name
    db.expire_all()
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "urgent.admin_view")).first()
    # The consult's ring page sends the administrator to the view, never a 404.
    to_view = other_client.get(f"/urgent/{public_id}", headers=HTML, follow_redirects=False)
    assert to_view.status_code == 303 and to_view.headers["location"].startswith("/admin/urgent")

    # Another region's administrator cannot act on it.
    far = make_client(app)
    login(far, world.far_admin)
    refused = far.post(
        f"/admin/urgent/{item.id}/ring",
        data={"specialist_id": str(world.offduty.id)},
        headers=HTML,
        follow_redirects=False,
    )
    assert refused.status_code == 404
    far.close()

    rang = other_client.post(
        f"/admin/urgent/{item.id}/ring",
        data={"specialist_id": str(world.offduty.id)},
        headers=HTML,
        follow_redirects=False,
    )
    assert rang.status_code == 303
    assert "urgent.ring" in kinds_for(db, world.offduty)
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "urgent.ring_named")).first()
    progress = client.get(f"/consults/{public_id}/urgent-progress").text
    assert world.offduty.name in progress

    taker = make_client(app)
    login(taker, world.offduty)
    assert f'data-ring="{public_id}"' in taker.get("/urgent/panel").text
    taken = taker.post(f"/urgent/{public_id}/accept", headers=HTML, follow_redirects=False)
    assert taken.headers["location"] == f"/consults/{public_id}"
    # The alert clears; the view shows who took it.
    assert alert not in other_client.get("/urgent/panel").text
    assert "urgent.taken" in kinds_for(db, world.admin)
    assert world.offduty.name in other_client.get("/admin/urgent", headers=HTML).text
    taker.close()


def test_widen_rings_the_nation_then_the_whole_specialty(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    world = make_world(db)
    login(client, world.gp)
    public_id = send_urgent(client, world)
    item = urgent_of(db, public_id)
    login(other_client, world.admin)
    other_client.post(f"/admin/urgent/{item.id}/widen", headers=HTML)
    assert set(urgent.rung_ids(db, item.id or 0)) == {world.oncall.id, world.national.id}
    other_client.post(f"/admin/urgent/{item.id}/widen", headers=HTML)
    assert world.offduty.id in urgent.rung_ids(db, item.id or 0)


def test_an_overdue_urgent_consult_alerts_the_hub_admin(
    db: Session, settings: Settings, app: FastAPI
) -> None:
    world = make_world(db)
    gp_client = make_client(app)
    login(gp_client, world.gp)
    public_id = send_urgent(gp_client, world)
    gp_client.close()
    consult = db.exec(select(ConsultRequest).where(ConsultRequest.public_id == public_id)).one()
    consult.requested_at = utcnow() - timedelta(hours=2)
    db.add(consult)
    db.commit()
    assert urgent.escalate_overdue_consults_once(app.state.engine, settings) == 1
    db.expire_all()
    assert db.get(ConsultRequest, consult.id).status == ConsultStatus.ESCALATED  # type: ignore[union-attr]
    assert "urgent.escalated" in kinds_for(db, world.admin)
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "urgent.overdue_alerted")).first()


def test_strangers_get_404_and_the_api_reports_state(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    world = make_world(db)
    login(client, world.gp)
    public_id = send_urgent(client, world)
    stranger = make_user(db, Role.SPECIALIST)  # another specialty
    login(other_client, stranger)
    assert other_client.get(f"/urgent/{public_id}", headers=HTML).status_code == 404
    assert other_client.post(f"/urgent/{public_id}/accept", headers=HTML).status_code == 404
    assert other_client.get("/admin/urgent", headers=HTML).status_code in (403, 404)
