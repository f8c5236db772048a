/* Dari inbox: live notifications from /ws/user (docs/signaling.md "User channel"), over
 * the shared client (lib/ws-client.js): it resumes from the last notification id seen.
 * An urgent consult rings (visibly, and audibly where the browser allows) until someone
 * takes it; any other news offers a refresh. The page itself is rendered by the server.
 * The kinds are listed in server/notifications/kinds.py (a test keeps the two in step). */

import { onPageExit } from "./lib/page.js";
import { connect } from "./lib/ws-client.js";

const RING_ALWAYS = ["urgent.ring", "urgent.escalated"];
const RING_IF_URGENT = ["consult.requested", "consult.overdue"];
const STOP_RING = ["urgent.taken", "urgent.accepted"];
const KEY = "dari.notifications.last";

/** The consult a notification is about: consults say "consult", scheduling "consult_id". */
function consultOf(n) {
  const p = n.payload || {};
  return String(p.consult_id || p.consult || "");
}

/** True for a notification that should ring (pure: tested). */
function rings(n) {
  if (RING_ALWAYS.indexOf(n.kind) >= 0) return true;
  return RING_IF_URGENT.indexOf(n.kind) >= 0 && !!n.payload && n.payload.urgency === "urgent";
}

/** True for a notification that ends the ringing for its consult (pure: tested). */
function stopsRinging(n) {
  return STOP_RING.indexOf(n.kind) >= 0;
}

function beep() {
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    [0, 0.35].forEach((at) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.2;
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start(ctx.currentTime + at);
      osc.stop(ctx.currentTime + at + 0.2);
    });
  } catch (e) { /* no sound without a user gesture: the banner still rings */ }
}

function start(live) {
  const S = live.dataset;
  const openedAt = Date.now();
  const ringingFor = {}; // consult public id → true while it rings
  const received = [];
  let lastId = 0;
  try {
    lastId = parseInt(localStorage.getItem(KEY) || "0", 10) || 0;
  } catch (e) { /* private mode */ }

  function announce(ringing, newRing) {
    live.textContent = "";
    live.appendChild(document.createTextNode((ringing ? S.ring : S.new) + " "));
    const again = document.createElement("a");
    again.href = location.pathname;
    again.textContent = S.reload;
    live.appendChild(again);
    live.classList.toggle("is-ringing", ringing);
    if (newRing) beep();
  }

  function onNotification(n) {
    if (n.id > lastId) {
      lastId = n.id;
      try {
        localStorage.setItem(KEY, String(lastId));
      } catch (e) { /* ignore */ }
    }
    // What happened before this page was drawn is already on it.
    const at = Date.parse(n.created_at);
    if (!isNaN(at) && at < openedAt - 30000) return;
    received.push(n);
    const newRing = rings(n);
    if (newRing) ringingFor[consultOf(n)] = true;
    else if (stopsRinging(n)) delete ringingFor[consultOf(n)];
    announce(Object.keys(ringingFor).length > 0, newRing);
  }

  const client = connect({
    path: S.ws,
    hello: () => ({ v: 1, type: "subscribe", after_id: lastId }), // resume after the last one seen
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
  onPageExit(() => client.close());

  window.dariInbox = {
    rings,
    stopsRinging,
    consultOf,
    ringing: () => Object.keys(ringingFor),
    received,
    client,
  };
}

const live = document.getElementById("live");
if (live && window.WebSocket) start(live);
