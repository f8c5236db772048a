"""Measure Dari's real call page between two Chromium pages over one lab profile.

Runs inside the lab's namespace (see __main__.py): coturn, the relay, a Dari server on
the namespace's loopback with relay-only ICE and REST-style TURN secrets, and one
headless Chromium with two pages (fake camera and microphone). The GP is the patient's
side: an init script points the GP page's TURN URL at the relay instead of coturn, so
all of the call's media crosses the impaired link (both directions). Every wait is
bounded.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright
from sqlmodel import Session

from bench.netlab.lab import (
    RELAY_IP,
    TURN_IP,
    TURN_PORT,
    TURN_SECRET,
    Coturn,
    LabError,
    RelayThread,
)
from bench.netlab.profiles import PROFILES, Profile
from server import migrate
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import observer_engine, start_server, stop_server
from tests.web.browser_fixtures import browser_login
from tests.web.support import make_call_case

PROBE = (Path(__file__).parent / "probe.js").read_text()
SETUP_TIMEOUT_S = 45.0
WARMUP_S = 12.0
RECOVERY_WAIT_S = 60.0
PRECALL_TIMEOUT_S = 45.0
CHAT_TEXT = "netlab: chat before the cut"
NOTE_TEXT = "netlab: note before the cut"
# Status lines every call shows; "what the user saw" lists the others.
QUIET_STATUSES = {"Connecting…", "Connected", "Waiting for the other participant…", ""}

# The GP page (patient's side) reaches coturn through the relay: same port, other address.
TO_RELAY = """
(() => {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  function Lab(config, ...rest) {
    if (config && config.iceServers) {
      config = Object.assign({}, config, {
        iceServers: config.iceServers.map((s) => Object.assign({}, s, {
          urls: [].concat(s.urls).map((u) => u.split("TURN_AT").join("RELAY_AT")),
        })),
      });
    }
    return new Native(config, ...rest);
  }
  Lab.prototype = Native.prototype;
  Object.setPrototypeOf(Lab, Native);
  window.RTCPeerConnection = Lab;
})();
""".replace("TURN_AT", f"{TURN_IP}:{TURN_PORT}").replace("RELAY_AT", f"{RELAY_IP}:{TURN_PORT}")


def server_env() -> dict[str, str]:
    return {
        "DARI_TURN_URLS": json.dumps([f"turn:{TURN_IP}:{TURN_PORT}?transport=udp"]),
        "DARI_TURN_SECRET": TURN_SECRET,
        "DARI_ICE_TRANSPORT_POLICY": "relay",
    }


@dataclass
class Sample:
    t: float  # seconds since the call pages were opened
    gp: dict[str, Any]
    sp: dict[str, Any]


@dataclass
class Run:
    profile: Profile
    samples: list[Sample] = field(default_factory=list)
    t_steady: float = 0.0
    t_cut: float | None = None
    t_back: float | None = None
    note_kept: bool | None = None
    chat_kept: bool | None = None
    coturn: dict[str, int] = field(default_factory=dict)
    relay: dict[str, dict[str, int]] = field(default_factory=dict)
    precall: dict[str, Any] = field(default_factory=dict)


def probe(page: Page) -> dict[str, Any]:
    try:
        value = page.evaluate(PROBE)
    except Exception as e:  # a page mid-navigation answers nothing this time
        return {"failed": str(e)[:200]}
    return value if isinstance(value, dict) else {}


def poll(run: Run, gp: Page, sp: Page, t0: float) -> Sample:
    sample = Sample(time.monotonic() - t0, probe(gp), probe(sp))
    run.samples.append(sample)
    return sample


def has_media(s: dict[str, Any]) -> bool:
    return bool(s.get("apackets")) and bool(s.get("vframes"))


def measure(
    browser: Browser,
    base: str,
    db_url: str,
    relay: RelayThread,
    coturn: Coturn,
    profile: Profile,
    seconds: float,
    precall: bool = True,
) -> Run:
    run = Run(profile)
    with Session(observer_engine(db_url), expire_on_commit=False) as db:
        case = make_call_case(db)
    relay.set(profile.impairment())
    contexts = []
    pages = []
    for user in (case.gp, case.specialist):
        context = browser.new_context(
            base_url=base, locale="en-GB", viewport={"width": 1280, "height": 720}
        )
        context.add_cookies([{"name": "dari_lang", "value": "en", "url": base}])
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        browser_login(page, user)
        pages.append(page)
    gp, sp = pages
    gp.add_init_script(TO_RELAY)
    call_path = f"/consults/{case.consult.public_id}/call"
    try:
        # The GP checks the link first, through the same relayed TURN path as the call.
        if precall:
            run.precall = precall_check(gp)
            print(f"netlab: {profile.name} pre-call: {json.dumps(run.precall)}", flush=True)
        log_offset = len(coturn.text())
        counters_before = relay.counters()
        t0 = time.monotonic()
        gp.goto(call_path)
        sp.goto(call_path)
        deadline = t0 + SETUP_TIMEOUT_S
        while time.monotonic() < deadline:
            s = poll(run, gp, sp, t0)
            if has_media(s.gp) and has_media(s.sp):
                break
            time.sleep(0.5)
        if profile.cut_s:
            run.t_steady = time.monotonic() - t0
            gp.fill("#chat-input", CHAT_TEXT)
            gp.press("#chat-input", "Enter")
            note = gp.locator("textarea.notes-text")
            if note.count():
                note.first.fill(NOTE_TEXT)
            until = time.monotonic() + WARMUP_S
            while time.monotonic() < until:
                poll(run, gp, sp, t0)
                time.sleep(1.0)
            relay.cut(profile.cut_s)
            run.t_cut = time.monotonic() - t0
            run.t_back = run.t_cut + profile.cut_s
            recovered_at: float | None = None
            prev = run.samples[-1]
            until = time.monotonic() + profile.cut_s + RECOVERY_WAIT_S
            while time.monotonic() < until:
                s = poll(run, gp, sp, t0)
                if recovered_at is None and s.t > run.t_back and media_flows(prev, s):
                    recovered_at = s.t
                prev = s
                if recovered_at is not None and s.t > recovered_at + 8:
                    break
                time.sleep(0.5)
            run.chat_kept = CHAT_TEXT in gp.locator("#chat-log").inner_text()
            if note.count():
                run.note_kept = note.first.input_value() == NOTE_TEXT
        else:
            time.sleep(3.0)  # let the start-up ramp pass before the steady window
            run.t_steady = time.monotonic() - t0
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                poll(run, gp, sp, t0)
                time.sleep(1.0)
        after = relay.counters()
        # This profile's datagrams only (the relay serves every profile of the run).
        run.relay = {
            way: {k: v - counters_before[way][k] for k, v in after[way].items()} for way in after
        }
        for page, name in ((gp, "gp"), (sp, "specialist")):
            shots = Path("test-artifacts")
            shots.mkdir(exist_ok=True)
            page.screenshot(path=str(shots / f"netlab-{profile.name}-{name}.png"))
    finally:
        for context in contexts:
            context.close()
    time.sleep(1.5)  # coturn logs each session's usage as it closes
    run.coturn = coturn.relayed(log_offset)
    return run


def precall_check(page: Page) -> dict[str, Any]:
    """The pre-call page's link test on this link: its figures and recommendation."""
    page.goto("/precall")
    page.wait_for_function("() => document.getElementById('preview').srcObject !== null")
    page.click("#start-test")
    try:
        page.wait_for_function(
            "() => !document.getElementById('recommendation').hidden",
            timeout=PRECALL_TIMEOUT_S * 1000,
        )
    except Exception as e:  # reported as such in the table, the call still runs
        return {"recommendation": None, "failed": str(e)[:200]}
    result = page.evaluate("() => window.dariPrecall.result")
    m = result.get("measured") or {}
    a = m.get("audio") or {}

    def r(v: Any) -> float | None:
        return None if v is None else round(float(v), 1)

    return {
        "recommendation": result.get("recommendation"),
        "rtt_ms": r(m.get("rttMs")),
        "loss_pct": r(m.get("lossPct")),
        "jitter_ms": r(m.get("jitterMs")),
        "available_kbps": r(m.get("availableKbps")),
        # The second phase: microphone only, as the call runs after a fall-back.
        "audio_rtt_ms": r(a.get("rttMs")),
        "audio_loss_pct": r(a.get("lossPct")),
    }


def media_flows(prev: Sample, cur: Sample) -> bool:
    """Audio packets arrive again on both pages between two samples."""

    def grew(a: dict[str, Any], b: dict[str, Any]) -> bool:
        before, after = a.get("apackets") or 0, b.get("apackets") or 0
        # A new peer connection starts its counters again.
        return (after - before if after >= before else after) >= 5

    return grew(prev.gp, cur.gp) and grew(prev.sp, cur.sp)


def run_lab(names: list[str], seconds: float, out_dir: Path, precall: bool = True) -> list[Run]:
    out_dir.mkdir(parents=True, exist_ok=True)
    coturn = Coturn(out_dir / "coturn.log")
    relay = RelayThread()
    db_url = f"sqlite:///{out_dir / 'dari.sqlite3'}"
    migrate.upgrade(db_url)
    coturn.start()
    relay.start()
    runs: list[Run] = []
    process = None
    try:
        process, base = start_server(db_url, out_dir / "var", extra_env=server_env())
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for name in names:
                    if name not in PROFILES:
                        raise LabError(f"unknown profile {name!r}: {', '.join(PROFILES)}")
                    print(f"netlab: {name} ({PROFILES[name].describe()})", flush=True)
                    run = measure(
                        browser, base, db_url, relay, coturn, PROFILES[name], seconds, precall
                    )
                    runs.append(run)
                    raw = [{"t": round(x.t, 2), "gp": x.gp, "sp": x.sp} for x in run.samples]
                    (out_dir / f"samples-{name}.json").write_text(json.dumps(raw))
                    print(json.dumps(summarise(run)), flush=True)
            finally:
                browser.close()
    finally:
        if process is not None:
            stop_server(process)
        relay.stop()
        coturn.stop()
    return runs


# ---- Figures ----


def _delta(samples: list[dict[str, Any]], key: str) -> float:
    """Growth of a cumulative counter across samples (a reset counts from zero)."""
    total = 0.0
    prev: float | None = None
    for s in samples:
        v = s.get(key)
        if v is None:
            continue
        if prev is not None:
            total += v - prev if v >= prev else v
        prev = v
    return total


def _median(values: list[Any]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return round(statistics.median(present), 1) if present else None


def side(samples: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    probes = [s for _, s in samples if "t" in s]
    if len(probes) < 2:
        return {}
    span = (probes[-1]["t"] - probes[0]["t"]) / 1000
    heard = _delta(probes, "asamples")
    concealed = _delta(probes, "aconcealed")
    return {
        "concealment_pct": round(100 * concealed / heard, 1) if heard else None,
        "fps": round(_delta(probes, "vframes") / span, 1) if span > 0 else None,
        "freezes": int(_delta(probes, "freezes")),
        "freeze_s": round(_delta(probes, "freezeS"), 1),
        "rtt_ms": _median([s.get("rtt") for s in probes]),
        "jitter_ms": _median([s.get("jitter") for s in probes]),
        "width": _median([s.get("width") for s in probes]),
        "video_kbps_out": round(_delta(probes, "vsentBytes") * 8 / 1000 / span, 1)
        if span > 0
        else None,
        "audio_kbps_out": round(_delta(probes, "asentBytes") * 8 / 1000 / span, 1)
        if span > 0
        else None,
    }


def _first(run: Run, test: Any) -> float | None:
    for s in run.samples:
        if test(s.gp) and test(s.sp):
            return round(s.t, 1)
    return None


def _audio_only(run: Run, who: str) -> tuple[float | None, float | None]:
    on = off = None
    for s in run.samples:
        probe_ = getattr(s, who)
        if probe_.get("audioOnly") and on is None:
            on = round(s.t, 1)
        elif on is not None and not probe_.get("audioOnly") and off is None:
            off = round(s.t, 1)
    return on, off


def _seen(run: Run, who: str) -> list[str]:
    seen: list[str] = []
    for s in run.samples:
        probe_ = getattr(s, who)
        for key in ("status", "banner", "error"):
            text = (probe_.get(key) or "").strip()
            if key == "status" and (text in QUIET_STATUSES or "joined the call" in text):
                continue
            if text and text not in seen:
                seen.append(text)
        if probe_.get("writing") and "[continue in writing offered]" not in seen:
            seen.append("[continue in writing offered]")
    return seen


def summarise(run: Run) -> dict[str, Any]:
    window = [
        s for s in run.samples if s.t >= run.t_steady and (run.t_cut is None or s.t < run.t_cut)
    ]
    after: list[Sample] = []
    recovery: float | None = None
    if run.t_back is not None:
        prev = None
        for s in run.samples:
            if prev is not None and s.t > run.t_back and recovery is None and media_flows(prev, s):
                recovery = round(s.t - run.t_back, 1)
            if recovery is not None:
                after.append(s)
            prev = s
    gp_on, gp_off = _audio_only(run, "gp")
    first_on = min((t for t in (gp_on, _audio_only(run, "sp")[0]) if t is not None), default=None)
    settled = (
        [s for s in window if s.t >= first_on + 4] if first_on is not None else []
    )  # from a few seconds after the first fall-back: what the call then sustains
    sp_on, sp_off = _audio_only(run, "sp")
    # What the call sustained: its mode at the end of the steady window (before any cut).
    end = window[-1] if window else None
    sustained = (
        None
        if end is None
        else "audio only"
        if end.gp.get("audioOnly") or end.sp.get("audioOnly")
        else "video"
    )
    locals_ = {s.gp.get("local") for s in window} | {s.sp.get("local") for s in window}
    return {
        "profile": run.profile.name,
        "link": run.profile.describe(),
        "first_audio_s": _first(run, lambda p: bool(p.get("apackets"))),
        "first_video_s": _first(run, lambda p: bool(p.get("vframes"))),
        # What the specialist receives from the GP, and what the GP receives.
        "specialist_receives": side([(s.t, s.sp) for s in window]),
        "gp_receives": side([(s.t, s.gp) for s in window]),
        "after_cut_specialist": side([(s.t, s.sp) for s in after]) if after else None,
        "audio_only_specialist": side([(s.t, s.sp) for s in settled]) if settled else None,
        "audio_only_gp": side([(s.t, s.gp) for s in settled]) if settled else None,
        "gp_audio_only": [gp_on, gp_off],
        "specialist_audio_only": [sp_on, sp_off],
        "recovery_s": recovery,
        "cut_at_s": run.t_cut,
        "gp_saw": _seen(run, "gp"),
        "specialist_saw": _seen(run, "sp"),
        "chat_kept": run.chat_kept,
        "note_kept": run.note_kept,
        "candidate_types": sorted(str(x) for x in locals_),
        "coturn": run.coturn,
        "relay": run.relay,
        "precall": run.precall,
        "sustained": sustained,
    }
