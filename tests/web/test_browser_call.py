"""A GP and a specialist on the call page in two Chromium contexts, through the real /ws.

Each sees the other's video (inbound frames decoded), they chat, one falls back to audio
only and back, one drops off the network and comes back, and the video resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from tests.web.browser_fixtures import browser_login, csp_violations, shot, wait_until
from tests.web.support import make_call_case

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FRAMES = "() => window.dariCall.inbound('framesDecoded', 'video')"


def frames(page: Any) -> int:
    value: int = page.evaluate(FRAMES)
    return value


def frames_grow(page: Any, seconds: float = 1.5) -> bool:
    before = frames(page)
    time.sleep(seconds)
    return frames(page) > before


def connected(page: Any) -> bool:
    states: list[str] = page.evaluate("() => window.dariCall.connectionStates()")
    return "connected" in states


def test_gp_and_specialist_call_chat_fall_back_and_reconnect(
    new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    gp = new_page("ko")
    specialist = new_page("en")
    browser_login(gp, case.gp)
    browser_login(specialist, case.specialist)
    call_path = f"/consults/{case.consult.public_id}/call"
    gp.goto(call_path)
    specialist.goto(call_path)

    # Both connect and each decodes the other's video.
    wait_until(lambda: connected(gp) and connected(specialist), timeout=30)
    wait_until(lambda: frames(gp) > 0 and frames(specialist) > 0, timeout=30)
    assert gp.locator(".remote-tile video").count() >= 1
    gp.evaluate("() => window.dariCall.sampleStats()")
    time.sleep(3.2)
    gp.evaluate("() => window.dariCall.sampleStats()")
    assert gp.locator("#q-rtt").inner_text() != "–"
    assert gp.locator("#quality").get_attribute("data-level") in ("good", "fair", "poor")
    shot(gp, "call.ko", guide=True)

    # Audio keeps priority; the bandwidth cap lands on the video sender.
    params = gp.evaluate("() => window.dariCall.senderParameters()")
    assert params["audio"]["priority"] == "high"
    assert params["audio"]["networkPriority"] == "high"
    assert "maxBitrate" not in params["video"]
    gp.select_option("#bandwidth", "150")
    wait_until(
        lambda: (
            gp.evaluate("() => window.dariCall.senderParameters()")["video"].get("maxBitrate")
            == 150_000
        )
    )
    gp.select_option("#bandwidth", "0")

    # In-call chat, both ways.
    gp.fill("#chat-input", "안녕하세요, 환자 ECG를 보시겠어요?")
    gp.press("#chat-input", "Enter")
    wait_until(lambda: "ECG" in specialist.locator("#chat-log").inner_text())
    specialist.fill("#chat-input", "Yes, please share the screen.")
    specialist.click("#chat-form button[type=submit]")
    wait_until(lambda: "share the screen" in gp.locator("#chat-log").inner_text())
    assert specialist.locator("#chat-log li").count() == 2

    # The specialist goes audio only: the GP stops receiving video; then it comes back.
    specialist.click("#btn-audio-only")
    assert specialist.get_attribute("#btn-audio-only", "aria-pressed") == "true"
    assert specialist.locator("#call-banner").is_visible()
    time.sleep(1.5)  # frames already in flight still arrive
    assert not frames_grow(gp, 2.0)
    shot(specialist, "call-audio-only.en", guide=True)
    specialist.click("#call-banner-action")  # "Turn video back on"
    assert specialist.get_attribute("#btn-audio-only", "aria-pressed") == "false"
    wait_until(lambda: frames_grow(gp), timeout=20)

    # The GP drops: network off and the signaling socket gone; the page says so.
    peer_id = gp.evaluate("() => window.dariCall.state.peerId")
    gp.context.set_offline(True)
    gp.evaluate("() => window.dariCall.dropSignaling()")
    wait_until(
        lambda: gp.get_attribute("#call-status", "data-state") in ("reconnecting", "offline")
    )
    assert gp.locator("#call-banner").is_visible()
    shot(gp, "call-reconnecting.ko", guide=True)
    time.sleep(2)
    gp.context.set_offline(False)

    # It comes back with its resume token (same peer id) and the video resumes both ways.
    wait_until(lambda: gp.evaluate("() => window.dariCall.socketOpen()"), timeout=20)
    wait_until(
        lambda: (
            gp.evaluate("() => window.dariCall.state.resumeToken") is not None
            and gp.get_attribute("#call-status", "data-state") not in ("reconnecting", "offline")
        ),
        timeout=20,
    )
    assert gp.evaluate("() => window.dariCall.state.peerId") == peer_id
    wait_until(lambda: connected(gp) and connected(specialist), timeout=30)
    wait_until(lambda: frames_grow(gp) and frames_grow(specialist), timeout=30)
    assert gp.locator("#call-banner").is_hidden()
    # Nothing failed on the way, so no error is shown.
    assert gp.locator("#call-error").is_hidden() and specialist.locator("#call-error").is_hidden()
    shot(specialist, "call.en", guide=True)
    assert csp_violations(gp) == [] and csp_violations(specialist) == []


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_screen_share_renegotiates_and_a_guest_is_admitted_from_the_lobby(
    lang: str, new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    gp = new_page(lang)
    specialist = new_page(lang)
    browser_login(gp, case.gp)
    browser_login(specialist, case.specialist)
    call_path = f"/consults/{case.consult.public_id}/call"
    gp.goto(call_path)
    specialist.goto(call_path)
    wait_until(lambda: frames(gp) > 0 and frames(specialist) > 0, timeout=30)

    # Screen share adds a track: renegotiation through perfect negotiation, no glare.
    gp.click("#btn-screen")
    wait_until(lambda: gp.get_attribute("#btn-screen", "aria-pressed") == "true")
    wait_until(lambda: specialist.locator(".remote-tile.screen").count() == 1, timeout=20)
    shot(specialist, f"call-screen-share.{lang}", guide=True)
    gp.click("#btn-screen")
    wait_until(lambda: specialist.locator(".remote-tile.screen").count() == 0, timeout=20)
    assert connected(gp) and connected(specialist)
    assert frames_grow(specialist)

    # The GP invites an interpreter, who waits in the lobby until admitted.
    gp.fill("#guest-name", "통역사 김")
    gp.click("#invite")
    wait_until(lambda: gp.input_value("#invite-link").startswith("http"))
    link = gp.input_value("#invite-link")
    assert "#" in link and "/calls/guest" in link
    guest = new_page(lang)
    guest.goto(link)
    wait_until(lambda: guest.get_attribute("#call-status", "data-state") == "lobbyWaiting")
    wait_until(lambda: gp.locator("#lobby li").count() == 1)
    assert "통역사 김" in gp.locator("#lobby").inner_text()
    shot(gp, f"call-lobby.{lang}", guide=True)
    gp.click("#lobby li button.primary")  # admit
    wait_until(lambda: frames(guest) > 0, timeout=30)
    wait_until(lambda: gp.locator(".remote-tile").count() >= 2, timeout=30)
    # The invitation was single use: opening it again gets nowhere.
    again = new_page(lang)
    again.goto(link)
    wait_until(lambda: again.get_attribute("#call-status", "data-state") == "refused")
    assert csp_violations(gp) == [] and csp_violations(guest) == []


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_weak_link_falls_back_to_audio_only_visibly_and_reversibly(
    lang: str, new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    gp = new_page(lang)
    browser_login(gp, case.gp)
    gp.goto(f"/consults/{case.consult.public_id}/call")
    gp.wait_for_function("() => window.dariCall && window.dariCall.state.peerId !== null")
    weak_for_video = {"rttMs": 400, "lossPct": 20, "availableKbps": 90}
    gp.evaluate("s => window.dariCall.adapt(s)", weak_for_video)
    gp.evaluate("s => window.dariCall.adapt(s)", weak_for_video)
    assert gp.get_attribute("#btn-audio-only", "aria-pressed") == "false"  # not on one blip
    gp.evaluate("s => window.dariCall.adapt(s)", weak_for_video)
    assert gp.get_attribute("#btn-audio-only", "aria-pressed") == "true"
    assert gp.get_attribute("#call-banner", "data-kind") == "audioOnlyAuto"
    assert gp.locator("#call-banner-text").inner_text().strip() != ""
    shot(gp, f"call-audio-only-auto.{lang}", guide=True)
    gp.click("#call-banner-action")  # reversible by the user
    assert gp.get_attribute("#btn-audio-only", "aria-pressed") == "false"
    assert gp.locator("#call-banner").is_hidden()
    # When even audio fails, the written consult is one click away.
    failing = {"rttMs": 3500, "lossPct": 40}
    for _ in range(3):
        gp.evaluate("s => window.dariCall.adapt(s)", failing)
    assert gp.get_attribute("#call-banner", "data-kind") == "audioFailing"
    writing = gp.locator("#call-banner-writing")
    assert writing.is_visible()
    assert writing.get_attribute("href") == f"/consults/{case.consult.public_id}#thread"
    shot(gp, f"call-audio-failing.{lang}", guide=True)
    # One click: the consult switches to written (consults' mode route), the thread opens.
    with gp.expect_request(
        lambda request: request.method == "POST" and request.url.endswith("/mode")
    ) as switch:
        writing.click()
    assert "mode=async" in (switch.value.post_data or "")
    gp.wait_for_url(f"**/consults/{case.consult.public_id}#thread")
    response = switch.value.response()
    assert response is not None and response.status in (200, 303), response and response.status
    bdb.refresh(case.consult)
    assert case.consult.mode == "async"


def test_both_sides_renegotiate_at_once_without_breaking_the_call(
    new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    gp = new_page("ko")
    specialist = new_page("ko")
    browser_login(gp, case.gp)
    browser_login(specialist, case.specialist)
    call_path = f"/consults/{case.consult.public_id}/call"
    gp.goto(call_path)
    specialist.goto(call_path)
    wait_until(lambda: frames(gp) > 0 and frames(specialist) > 0, timeout=30)
    # Both share their screen at the same moment: the offers cross (glare), the polite
    # side rolls back, and both end up with the other's screen.
    start_at = (
        "at => setTimeout(() => document.getElementById('btn-screen').click(), at - Date.now())"
    )
    at = gp.evaluate("() => Date.now()") + 800
    gp.evaluate(start_at, at)
    specialist.evaluate(start_at, at)
    wait_until(
        lambda: (
            gp.locator(".remote-tile.screen").count() == 1
            and specialist.locator(".remote-tile.screen").count() == 1
        ),
        timeout=30,
    )
    assert connected(gp) and connected(specialist)
    assert frames_grow(gp) and frames_grow(specialist)
    glare = [page.evaluate("() => window.dariCall.state.glare") for page in (gp, specialist)]
    print(f"\nglare counters (gp, specialist): {glare}")
    # Glare is part of the protocol, not an error: nothing is shown to the user.
    assert gp.locator("#call-error").is_hidden() and specialist.locator("#call-error").is_hidden()


# Counts what the page's own code still does: timer callbacks that fire and getStats() calls.
COUNT_ACTIVITY = """(() => {
  const seen = { timers: 0, stats: 0 };
  const wrap = (original) => function (fn, ...rest) {
    if (typeof fn !== "function") return original.call(window, fn, ...rest);
    return original.call(window, function (...args) {
      seen.timers++;
      return fn.apply(this, args);
    }, ...rest);
  };
  window.setTimeout = wrap(window.setTimeout);
  window.setInterval = wrap(window.setInterval);
  const getStats = RTCPeerConnection.prototype.getStats;
  RTCPeerConnection.prototype.getStats = function (...args) {
    seen.stats++;
    return getStats.apply(this, args);
  };
  window.dariSeen = seen;
})();"""


def test_hang_up_leaves_no_timer_socket_or_stats_poll(
    new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    gp = new_page("ko")
    specialist = new_page("en")
    browser_login(gp, case.gp)
    browser_login(specialist, case.specialist)
    consult_path = f"/consults/{case.consult.public_id}"
    gp.add_init_script(COUNT_ACTIVITY)
    sent: list[str] = []
    gp.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    gp.goto(f"{consult_path}/call")
    specialist.goto(f"{consult_path}/call")
    wait_until(lambda: frames(gp) > 0 and frames(specialist) > 0, timeout=30)
    gp.wait_for_selector("[data-notes-consult][data-state=saved]")
    time.sleep(5.5)  # heartbeats and stats polls have run at least once
    assert gp.evaluate("() => window.dariSeen.timers") > 0
    assert any('"ping"' in frame for frame in sent)

    # Hang up, staying on the page (the way to the consult page is blocked) to watch it.
    gp.route(f"**{consult_path}", lambda route: route.abort("aborted"))
    gp.click("#btn-hangup")
    wait_until(lambda: gp.get_attribute("#call-status", "data-state") == "ended")
    wait_until(lambda: specialist.get_attribute("#call-status", "data-state") == "peerLeft")
    assert any('"leave"' in frame for frame in sent)
    assert gp.evaluate("() => window.dariCall.liveTimers()") == 0
    assert gp.evaluate(
        "() => document.querySelector('[data-notes-consult]').dariNotes.ws.isClosed()"
    )
    before = gp.evaluate("() => ({...window.dariSeen})")
    frames_before = len(sent)
    time.sleep(7)  # longer than every period: heartbeat 5 s, stats 3 s, notes 5 s
    assert gp.evaluate("() => ({...window.dariSeen})") == before
    assert sent[frames_before:] == []
    assert gp.evaluate("() => window.dariCall.connectionStates()") == []
    assert gp.url.endswith("/call")
    assert csp_violations(gp) == []


@pytest.mark.parametrize(
    ("lang", "negotiation", "signaling"),
    [
        ("ko", "연결을 설정하지 못했습니다", "신호 서버 오류: bad_frame"),
        ("en", "Setting up the connection failed", "Signaling error: bad_frame"),
    ],
)
def test_negotiation_and_signaling_errors_are_shown_translated(
    lang: str, negotiation: str, signaling: str, new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    gp = new_page(lang)
    browser_login(gp, case.gp)
    gp.goto(f"/consults/{case.consult.public_id}/call")
    gp.wait_for_function("() => window.dariCall && window.dariCall.state.peerId !== null")
    error = gp.locator("#call-error")
    assert error.is_hidden()
    # An offer the browser cannot take (setRemoteDescription fails): said on the page.
    gp.evaluate(
        "() => window.dariCall.receive({type: 'offer', from: 'p_broken', sdp: 'v=0 nonsense'})"
    )
    wait_until(lambda: error.is_visible())
    assert error.get_attribute("data-kind") == "negotiationFailed"
    assert negotiation in error.inner_text()
    assert "Error" in error.inner_text()  # the failure's name, for support
    shot(gp, f"call-negotiation-error.{lang}")
    # That peer leaves: the error goes with it.
    gp.evaluate("() => window.dariCall.receive({type: 'peer-left', peer_id: 'p_broken'})")
    wait_until(lambda: error.is_hidden())
    # A signaling error frame is shown too (it clears itself after a while).
    gp.evaluate("() => window.dariCall.receive({type: 'error', code: 'bad_frame'})")
    wait_until(lambda: error.is_visible())
    assert error.inner_text().strip() == signaling
    # A frame for a peer that has just left is a harmless race: not shown.
    gp.evaluate("() => window.dariCall.receive({type: 'peer-left', peer_id: 'nobody'})")
    assert csp_violations(gp) == []
