/* Dari inbox: live notifications from /ws/user (docs/signaling.md "User channel"), over
 * the shared client (lib/ws-client.js). It resumes from the floor the server last told
 * it (it has every notification at or below it), not from the newest id seen: a lower
 * id may still commit. Ids above the floor that it has seen are kept, so a notification
 * sent again after a reconnect is handled once (`catchUp`, pure: tested).
 *
 * The urgent ring is state, not an event: the panel (#urgent-panel) is read from the
 * server (/urgent/panel, server/scheduling/urgent_views.py) when the page opens, on every
 * (re)connect, on every notification and every few seconds, so it survives a reload and
 * a reconnect and stops as soon as the server says someone took the consult. While
 * something rings, a tone repeats (WebAudio) and the banner flashes. Any other news
 * offers a refresh. The kinds are listed in server/notifications/kinds.py (a test keeps
 * the two in step): those below make the inbox read the ring state at once. */

import { catchUp, loadCatchUp, saveCatchUp } from "./lib/catchup.js";
import { onPageExit } from "./lib/page.js";
import { Timers } from "./lib/timers.js";
import { closeAudio, ringOnce } from "./lib/tone.js";
import { connect } from "./lib/ws-client.js";

export { catchUp, mergeCatchUp } from "./lib/catchup.js";

const RING_ALWAYS = ["urgent.ring", "urgent.escalated"];
const RING_IF_URGENT = ["consult.requested", "consult.overdue"];
const STOP_RING = ["urgent.taken", "urgent.accepted"];
const TONE_EVERY_MS = 2500;
const STATE_EVERY_MS = 15000;

/** The consult a notification is about: consults say "consult", scheduling "consult_id". */
function consultOf(n) {
  const p = n.payload || {};
  return String(p.consult_id || p.consult || "");
}

/** True for a notification that may start a ring (pure: tested). */
export
function rings(n) {
  if (RING_ALWAYS.indexOf(n.kind) >= 0) return true;
  return RING_IF_URGENT.indexOf(n.kind) >= 0 && !!n.payload && n.payload.urgency === "urgent";
}

/** True for a notification that may end a ring (pure: tested). */
export function stopsRinging(n) {
  return STOP_RING.indexOf(n.kind) >= 0;
}

function start(live) {
  const S = live.dataset;
  const panel = document.getElementById("urgent-panel");
  const timers = new Timers();
  const openedAt = Date.now();
  const received = [];
  // This page's own: the reconnects of this page resume from it (another tab's floor
  // would not say what this page has heard).
  let heard = loadCatchUp();
  let ringingIds = [];
  let alerting = false;
  let toneTimer = null;
  let tones = 0;
  let reads = 0;
  let reading = false;
  let readAgain = false;
  let shown = "";

  function banner(text) {
    live.textContent = "";
    live.appendChild(document.createTextNode(text + " "));
    const again = document.createElement("a");
    again.href = location.pathname;
    again.textContent = S.reload;
    live.appendChild(again);
  }

  function tone() {
    if (ringOnce()) tones += 1;
  }

  function setRinging(on) {
    const was = live.classList.contains("is-ringing");
    live.classList.toggle("is-ringing", on);
    if (on && !was) {
      banner(S.ring);
      tone();
      toneTimer = timers.every(TONE_EVERY_MS, tone);
    } else if (!on && was) {
      timers.cancel(toneTimer);
      toneTimer = null;
      banner(S.new);
    }
  }

  function show(html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const body = doc.querySelector(".urgent-panel");
    if (!body) return;
    // Unchanged state leaves the panel alone: a button being pressed is not replaced.
    if (html !== shown) {
      shown = html;
      panel.replaceChildren(document.importNode(body, true));
    }
    ringingIds = Array.from(body.querySelectorAll("[data-ring]")).map((n) => n.dataset.ring);
    alerting = body.querySelectorAll("[data-alert]").length > 0;
    const counter = document.getElementById("pool-count");
    if (counter && body.dataset.poolCount !== undefined) counter.textContent = body.dataset.poolCount;
    setRinging(ringingIds.length > 0 || alerting);
  }

  /** Read the ring state; calls while a read is in flight fold into one more read. */
  async function readState() {
    if (!panel) return;
    if (reading) {
      readAgain = true;
      return;
    }
    reading = true;
    try {
      const response = await fetch(panel.dataset.src, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (response.ok) {
        show(await response.text());
        reads += 1;
      }
    } catch (e) { /* offline: the next notification, reconnect or tick reads it again */ }
    reading = false;
    if (readAgain) {
      readAgain = false;
      readState();
    }
  }

  function onNotification(n) {
    const step = catchUp(heard, n);
    heard = step.state;
    saveCatchUp(heard);
    if (!step.fresh) return; // sent again after a reconnect: handled already
    // The ring and the counters are state: read them again whatever the news.
    readState();
    // What happened before this page was drawn is already on it.
    const at = Date.parse(n.created_at);
    if (!isNaN(at) && at < openedAt - 30000) return;
    received.push(n);
    if (!rings(n) && !stopsRinging(n) && !live.classList.contains("is-ringing")) banner(S.new);
  }

  const client = connect({
    path: S.ws,
    hello: () => {
      readState(); // a reconnect may have missed the end of a ring
      return { v: 1, type: "subscribe", after_id: heard.floor }; // everything up to it is here
    },
    onFrame: (frame) => {
      if (frame.type === "notification") onNotification(frame);
    },
    ping: () => ({ v: 1, type: "ping" }),
    pingMs: 10000,
    silenceMs: 25000,
    baseMs: 1000,
    maxMs: 30000,
    finalCodes: [4403],
  });
  readState();
  timers.every(STATE_EVERY_MS, readState);
  onPageExit(() => {
    client.close();
    timers.clear();
    closeAudio();
  });

  window.dariInbox = {
    catchUp: () => ({ floor: heard.floor, seen: heard.seen.slice() }),
    rings,
    stopsRinging,
    consultOf,
    ringing: () => ringingIds.slice(),
    alerting: () => alerting,
    tones: () => tones,
    reads: () => reads,
    readState,
    received,
    client,
  };
}

const live = document.getElementById("live");
if (live && window.WebSocket) start(live);
