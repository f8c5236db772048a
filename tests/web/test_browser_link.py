"""The call page's link policy (web/static/call/link.js), through the page itself:
Opus tuned in the descriptions we apply, the tiers, the video cap, and what the page
does with a weak, an edge and a clean link. The lab (tests/netlab) measures the effect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from tests.web.browser_fixtures import browser_login, wait_until
from tests.web.support import make_call_case

pytestmark = [pytest.mark.browser]

OFFER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=0",
        "a=rtpmap:0 PCMU/8000",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=rtpmap:96 VP8/90000",
        "",
    ]
)


def test_link_policy_on_the_call_page(new_page: Callable[..., Any], bdb: Session) -> None:
    case = make_call_case(bdb)
    gp = new_page("en")
    browser_login(gp, case.gp)
    gp.goto(f"/consults/{case.consult.public_id}/call")
    wait_until(lambda: gp.evaluate("() => !!window.dariCall"))

    tuned: str = gp.evaluate("(sdp) => window.dariCall.link.tuneOpus(sdp)", OFFER)
    lines = tuned.split("\r\n")
    assert "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1" in lines
    assert lines.index("a=ptime:40") < lines.index("m=video 9 UDP/TLS/RTP/SAVPF 96")
    # Tuning twice changes nothing more; a description without Opus is left alone.
    assert gp.evaluate("(sdp) => window.dariCall.link.tuneOpus(sdp)", tuned) == tuned
    assert gp.evaluate("() => window.dariCall.link.tuneOpus('v=0\\r\\nm=video 9 x 96\\r\\n')") == (
        "v=0\r\nm=video 9 x 96\r\n"
    )

    tier = "(s) => window.dariCall.link.tierOf(s)"
    assert gp.evaluate(tier, {"availableKbps": 2000, "lossPct": 0, "rttMs": 40}) == "good"
    assert gp.evaluate(tier, {"availableKbps": 280, "lossPct": 6, "rttMs": 160}) == "weak"
    assert gp.evaluate(tier, {"availableKbps": 60, "lossPct": 5, "rttMs": 500}) == "edge"
    # A low estimate alone is our own cap talking (app-limited): it sets no tier.
    assert gp.evaluate(tier, {"availableKbps": 50, "lossPct": 0, "rttMs": 60}) == "good"
    # Down at once, up only after three better samples in a row.
    step = "([link, s]) => window.dariCall.link.nextTier(link, s)"
    good = {"availableKbps": 2000, "lossPct": 0, "rttMs": 40}
    edge = {"availableKbps": 60, "lossPct": 5, "rttMs": 500}
    assert gp.evaluate(step, [{"tier": "good", "upRun": 0}, edge])["tier"] == "good"  # a blip
    assert gp.evaluate(step, [{"tier": "good", "downRun": 1}, edge])["tier"] == "edge"
    assert gp.evaluate(step, [{"tier": "edge", "upRun": 0}, good])["upRun"] == 1
    assert gp.evaluate(step, [{"tier": "edge", "upRun": 2}, good])["tier"] == "weak"
    cap = "([user, tier]) => window.dariCall.link.videoCapKbps(user, {tier})"
    assert gp.evaluate(cap, [0, "good"]) == 0
    assert gp.evaluate(cap, [300, "good"]) == 300
    assert gp.evaluate(cap, [0, "weak"]) == 220
    assert gp.evaluate(cap, [0, "start"]) == 60
    assert gp.evaluate(cap, [150, "weak"]) == 150

    # An edge link: audio only by itself within three samples, Opus capped, and the
    # offer to continue in writing stays for links where even audio fails.
    for _ in range(3):
        gp.evaluate("(s) => window.dariCall.adapt(s)", edge)
    assert gp.evaluate("() => window.dariCall.state.audioOnly") is True
    assert gp.evaluate("() => window.dariCall.state.link.tier") == "edge"
    assert gp.locator("#call-banner").is_visible()
    # A clean link afterwards: video comes back by itself once the back-off has passed.
    gp.evaluate("() => { window.dariCall.state.link.audioOnlySince = Date.now() - 60000; }")
    for _ in range(5):
        gp.evaluate("(s) => window.dariCall.adapt(s)", good)
    assert gp.evaluate("() => window.dariCall.state.audioOnly") is False
    assert "video is back" in gp.locator("#call-banner-text").inner_text()
