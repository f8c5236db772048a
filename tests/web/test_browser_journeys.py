"""The whole consult as its users live it, through the pages only (no API shortcut, no
state button), once in each language: the video journey, the written journey, and the
refused-input paths. Every Korean page on the way is checked for English words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, select

from server.consults.models import ConsultRequest
from tests.consults.helpers import png_bytes
from tests.web.browser_fixtures import browser_login, csp_violations, shot, wait_until
from tests.web.journey_support import accept_dialogs, english_words, journey_people

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEXT = {
    "ko": {
        "question": "2주 전부터 운동 시 흉통, 심전도 첨부합니다.",
        "chat": "안녕하세요, 심전도 보셨나요?",
        "note": "심방세동, 심박수 110. 심부전 없음.",
        "assessment": "새로 생긴 심방세동입니다.",
        "requested": "의뢰됨",
        "scheduled": "예약됨",
        "in_progress": "진행 중",
        "gp_part": "일반의 결정 대기",
        "completed": "완료",
        "accepted": "수락됨",
        "report_pending": "소견서 대기",
        "decided": "일반의가 협진을 종료했습니다.",
        "question_to_gp": "흡연 여부를 알려 주시겠어요?",
        "answer": "하루 한 갑, 30년 흡연했습니다.",
    },
    "en": {
        "question": "Chest pain on exertion for two weeks; ECG attached.",
        "chat": "Hello, have you seen the ECG?",
        "note": "Atrial fibrillation, rate 110. No heart failure.",
        "assessment": "New-onset atrial fibrillation.",
        "requested": "requested",
        "scheduled": "scheduled",
        "in_progress": "in progress",
        "gp_part": "awaiting the GP's decision",
        "completed": "completed",
        "accepted": "accepted",
        "report_pending": "awaiting report",
        "decided": "The GP closed the consult.",
        "question_to_gp": "Does the patient smoke?",
        "answer": "A pack a day for thirty years.",
    },
}


def status_of(page: Any) -> str:
    text: str = page.locator("#status").inner_text()
    return text.strip()


def no_english(page: Any, lang: str) -> None:
    if lang == "ko":
        assert english_words(page) == [], page.url


def request_consult(gp: Any, specialty_id: int, chart: str, lang: str, mode: str) -> str:
    """The GP fills the request form (with an image) and sends it; the consult's id."""
    gp.goto("/")
    gp.click('a[href="/consults/new"]')
    gp.select_option("select[name=specialty_id]", str(specialty_id))
    gp.fill("input[name=patient_chart_number]", chart)
    gp.fill("input[name=patient_age]", "71")
    gp.select_option("select[name=patient_sex]", "female")
    gp.fill("textarea[name=clinical_question]", TEXT[lang]["question"])
    gp.select_option("select[name=mode]", mode)
    gp.set_input_files(
        "input[name=file]", {"name": "ecg.png", "mimeType": "image/png", "buffer": png_bytes()}
    )
    no_english(gp, lang)
    gp.click("button[name=action][value=submit]")
    gp.wait_for_url("**/consults/*")
    assert status_of(gp) == TEXT[lang]["requested"]
    assert gp.locator("#attachments").inner_text().count("ecg.png") == 1
    no_english(gp, lang)
    public_id: str = gp.url.rstrip("/").split("/")[-1].split("?")[0].split("#")[0]
    return public_id


def book_first_slot(gp: Any, public_id: str, lang: str) -> None:
    gp.click("#book a")
    gp.wait_for_url(f"**/schedule/book?consult={public_id}*")
    no_english(gp, lang)
    gp.locator("#slots tbody tr button[type=submit]").first.click()
    gp.wait_for_url(f"**/consults/{public_id}?booked=1*")
    # The confirmation: when, with whom, how to join.
    assert gp.locator("#appointment h2").count() == 1
    assert gp.locator("#appointment-with").inner_text().strip() != ""
    assert status_of(gp) == TEXT[lang]["scheduled"]
    no_english(gp, lang)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_video_journey(new_page: Callable[..., Any], bdb: Session, lang: str) -> None:
    people = journey_people(bdb)
    gp, specialist = new_page(lang), new_page(lang)
    for page in (gp, specialist):
        accept_dialogs(page)
    browser_login(gp, people.gp)
    browser_login(specialist, people.specialist)
    chart = "C-0301" if lang == "ko" else "C-0302"
    public_id = request_consult(gp, people.specialty_id, chart, lang, "video")
    book_first_slot(gp, public_id, lang)
    shot(gp, f"journey-booked.{lang}", guide=True)
    consult_url = f"/consults/{public_id}"

    # The specialist opens it from the schedule; both join the call from the consult page.
    specialist.goto("/schedule/appointments")
    specialist.click(f"#appt-{public_id}")
    specialist.wait_for_url(f"**{consult_url}")
    assert status_of(specialist) == TEXT[lang]["scheduled"]
    no_english(specialist, lang)
    join_both(gp, specialist, consult_url)  # both in the call, each seeing the other

    # Chat and note.
    gp.fill("#chat-input", TEXT[lang]["chat"])
    gp.press("#chat-input", "Enter")
    wait_until(lambda: TEXT[lang]["chat"] in specialist.locator("#chat-log").inner_text())
    specialist.wait_for_selector("[data-notes-consult][data-state=saved]")
    specialist.click("[data-notes-text]")
    specialist.keyboard.type(TEXT[lang]["note"])
    specialist.wait_for_selector("[data-notes-consult][data-state=saved]", timeout=10_000)
    # The report from the note, one click, without leaving the call.
    specialist.click("[data-notes-draft]")
    specialist.wait_for_selector("#note-to-report:not([hidden])")
    shot(specialist, f"journey-call.{lang}", guide=True)
    no_english(specialist, lang)

    # The GP leaves the call; the consult is in progress (the call moved it on).
    gp.click("#btn-hangup")
    gp.wait_for_url(f"**{consult_url}")
    assert status_of(gp) == TEXT[lang]["in_progress"]
    assert "ecg.png" in gp.locator("#attachments").inner_text()

    # The specialist hangs up, finds the note in the report, and signs.
    specialist.click("#btn-hangup")
    specialist.wait_for_url(f"**{consult_url}")
    findings = specialist.locator("textarea[name=findings]")
    assert TEXT[lang]["note"] in findings.input_value()
    specialist.fill("textarea[name=assessment]", TEXT[lang]["assessment"])
    no_english(specialist, lang)
    specialist.click("button[name=action][value=sign]")
    specialist.wait_for_url(f"**{consult_url}*")
    assert status_of(specialist) == TEXT[lang]["gp_part"]
    # The note stays beside the report, read-only now.
    specialist.wait_for_selector("[data-notes-consult][data-state=frozen]")
    assert specialist.locator("[data-notes-text]").get_attribute("readonly") is not None
    specialist.locator("#report-and-note").scroll_into_view_if_needed()
    shot(specialist, f"journey-signed.{lang}", guide=True)

    # The GP's page follows without a reload: the decision-and-close form appears.
    gp.wait_for_selector("#close-form", timeout=30_000)
    assert status_of(gp) == TEXT[lang]["gp_part"]
    assert TEXT[lang]["assessment"] in gp.locator("#report").inner_text()
    no_english(gp, lang)
    gp.locator("#close-form").scroll_into_view_if_needed()
    shot(gp, f"journey-decide.{lang}", guide=True)
    gp.select_option("#close-form select[name=action]", "treated_locally")
    gp.select_option("#close-form select[name=outcome]", "resolved_without_referral")
    gp.click("#close-form button[type=submit]")
    gp.wait_for_url(f"**{consult_url}")
    assert status_of(gp) == TEXT[lang]["completed"]
    assert TEXT[lang]["decided"] in gp.locator("#timeline").inner_text()
    assert gp.locator("#join-call").count() == 0 and gp.locator("#appointment").count() == 0
    no_english(gp, lang)
    # A done consult has no call page.
    gp.goto(f"{consult_url}/call")
    gp.wait_for_url(f"**{consult_url}")
    bdb.expire_all()
    stored = bdb.exec(select(ConsultRequest).where(ConsultRequest.public_id == public_id)).one()
    assert stored.status == "completed" and stored.outcome == "resolved_without_referral"
    assert csp_violations(gp) == [] and csp_violations(specialist) == []


def join_both(gp: Any, specialist: Any, consult_url: str) -> None:
    gp.click("#join-call button")
    specialist.click("#join-call button")
    for page in (gp, specialist):
        page.wait_for_url(f"**{consult_url}/call*")
    wait_until(
        lambda: all(
            page.evaluate("() => window.dariCall.inbound('framesDecoded', 'video')") > 0
            for page in (gp, specialist)
        ),
        timeout=30,
    )


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_written_journey(new_page: Callable[..., Any], bdb: Session, lang: str) -> None:
    people = journey_people(bdb)
    gp, specialist = new_page(lang), new_page(lang)
    for page in (gp, specialist):
        accept_dialogs(page)
    browser_login(gp, people.gp)
    browser_login(specialist, people.specialist)
    chart = "C-0401" if lang == "ko" else "C-0402"
    public_id = request_consult(gp, people.specialty_id, chart, lang, "async")
    consult_url = f"/consults/{public_id}"

    # The specialist finds it in the pool and accepts it; the GP's page follows.
    specialist.goto("/")
    specialist.click(f"#pool a[href='{consult_url}']")
    specialist.wait_for_url(f"**{consult_url}")
    no_english(specialist, lang)
    specialist.click("#actions button[value=accepted]")
    specialist.wait_for_url(f"**{consult_url}")
    assert status_of(specialist) == TEXT[lang]["accepted"]
    wait_until(lambda: status_of(gp) == TEXT[lang]["accepted"], timeout=30)

    # A question to the clinic: it is on the GP's to-do list; the GP answers.
    specialist.fill("#thread textarea[name=body]", TEXT[lang]["question_to_gp"])
    specialist.click("#thread button[type=submit]")
    specialist.wait_for_url(f"**{consult_url}*")
    gp.goto("/")
    gp.click(f"#tasks a[href='{consult_url}']")
    gp.wait_for_url(f"**{consult_url}")
    assert TEXT[lang]["question_to_gp"] in gp.locator("#thread").inner_text()
    gp.fill("#thread textarea[name=body]", TEXT[lang]["answer"])
    gp.click("#thread button[type=submit]")
    gp.wait_for_url(f"**{consult_url}*")
    no_english(gp, lang)

    # The specialist's page shows the answer without a reload, then the report is signed.
    wait_until(lambda: TEXT[lang]["answer"] in specialist.locator("#thread").inner_text())
    specialist.fill("textarea[name=findings]", TEXT[lang]["answer"])
    specialist.fill("textarea[name=assessment]", TEXT[lang]["assessment"])
    specialist.click("button[name=action][value=sign]")
    specialist.wait_for_url(f"**{consult_url}*")
    assert status_of(specialist) == TEXT[lang]["gp_part"]
    wait_until(lambda: status_of(gp) == TEXT[lang]["gp_part"], timeout=30)

    # The GP wants to see the patient with the specialist after all: the same consult
    # becomes a video consult and is booked, nothing typed again.
    gp.click("#mode button[type=submit]")
    gp.wait_for_url(f"**{consult_url}")
    book_first_slot(gp, public_id, lang)
    assert TEXT[lang]["question"] in gp.locator("#request").inner_text()
    specialist.goto(consult_url)
    join_both(gp, specialist, consult_url)
    for page in (gp, specialist):
        page.click("#btn-hangup")
        page.wait_for_url(f"**{consult_url}")
    assert status_of(specialist) == TEXT[lang]["in_progress"]
    # The specialist ends the consultation by its verb; the GP decides and closes.
    specialist.click("#actions button[value=report_pending]")
    specialist.wait_for_url(f"**{consult_url}")
    assert status_of(specialist) == TEXT[lang]["gp_part"]
    gp.wait_for_selector("#close-form", timeout=30_000)
    gp.select_option("#close-form select[name=outcome]", "referred")
    gp.select_option("#close-form select[name=action]", "referred")
    gp.click("#close-form button[type=submit]")
    gp.wait_for_url(f"**{consult_url}")
    assert status_of(gp) == TEXT[lang]["completed"]
    no_english(gp, lang)
    timeline = gp.locator("#timeline").inner_text()
    assert TEXT[lang]["decided"] in timeline
    assert csp_violations(gp) == [] and csp_violations(specialist) == []


REFUSED = {
    "ko": {
        "rrn": "주민등록번호",
        "type": "JPEG, PNG, PDF, DICOM 파일만",
        "size": "MB",
        "reason": "사유를 적어 주십시오",
        "overlap": "겹칩니다",
    },
    "en": {
        "rrn": "resident registration number",
        "type": "Only JPEG, PNG, PDF and DICOM",
        "size": "larger than the limit",
        "reason": "Say why",
        "overlap": "overlap another rule",
    },
}


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_refused_input_comes_back_by_its_field(
    new_page: Callable[..., Any], bdb: Session, lang: str
) -> None:
    people = journey_people(bdb)
    gp, specialist = new_page(lang), new_page(lang)
    for page in (gp, specialist):
        accept_dialogs(page)
    browser_login(gp, people.gp)
    browser_login(specialist, people.specialist)
    words = REFUSED[lang]
    chart = "C-0501" if lang == "ko" else "C-0502"

    def fill_form(history: str) -> None:
        gp.goto("/consults/new")
        gp.select_option("select[name=specialty_id]", str(people.specialty_id))
        gp.fill("input[name=patient_chart_number]", chart)
        gp.fill("input[name=patient_age]", "58")
        gp.fill("textarea[name=clinical_question]", TEXT[lang]["question"])
        gp.fill("textarea[name=history]", history)

    def kept() -> None:
        assert (
            gp.locator("textarea[name=clinical_question]").input_value() == TEXT[lang]["question"]
        )
        assert gp.locator("input[name=patient_chart_number]").input_value() == chart
        no_english(gp, lang)

    # A resident registration number: the form comes back, the number alone taken out.
    fill_form("고혈압 800101-1234567 10년")
    gp.click("button[name=action][value=submit]")
    gp.wait_for_selector("#history-error")
    assert words["rrn"] in gp.locator("#history-error").inner_text()
    assert gp.locator("textarea[name=history]").input_value() == "고혈압  10년"
    assert gp.locator("textarea[name=history]").get_attribute("aria-invalid") == "true"
    kept()
    gp.locator("#history-error").scroll_into_view_if_needed()
    shot(gp, f"journey-refused-number.{lang}", guide=True)

    # A disguised file (a web page named .png), then one over the size limit.
    for name, content, word in (
        ("scan.png", b"<html><script>alert(1)</script></html>", words["type"]),
        ("big.png", png_bytes() + bytes(20 * 1024 * 1024), words["size"]),
    ):
        fill_form("고혈압 10년")
        gp.set_input_files(
            "input[name=file]", {"name": name, "mimeType": "image/png", "buffer": content}
        )
        gp.click("button[name=action][value=submit]")
        gp.wait_for_selector("#file-error")
        assert word in gp.locator("#file-error").inner_text()
        assert gp.locator("textarea[name=history]").input_value() == "고혈압 10년"
        kept()
    bdb.expire_all()
    assert (
        bdb.exec(select(ConsultRequest).where(ConsultRequest.patient_chart_number == chart)).first()
        is None
    )

    # Sent at last; the specialist declines without a reason: the page asks for one.
    fill_form("고혈압 10년")
    gp.click("button[name=action][value=submit]")
    gp.wait_for_url("**/consults/*")
    specialist.goto(gp.url)
    specialist.click("#actions button[value=declined]")
    specialist.wait_for_selector("#reason-error")
    assert words["reason"] in specialist.locator("#reason-error").inner_text()
    no_english(specialist, lang)

    # An overlapping roster rule: the roster form comes back with what was typed.
    specialist.goto("/schedule/roster")
    specialist.fill("#start_time", "09:00")
    specialist.fill("#end_time", "10:00")
    specialist.fill("#valid_from", "2026-01-01")
    specialist.click("#rule-form button[type=submit]")
    specialist.wait_for_selector("#rule-error")
    assert words["overlap"] in specialist.locator("#rule-error").inner_text()
    assert specialist.locator("#start_time").input_value() == "09:00"
    no_english(specialist, lang)
