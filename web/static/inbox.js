/* Dari inbox: live notifications from /ws/user (docs/signaling.md "User channel").
 * An urgent consult rings (visibly, and audibly where the browser allows) until someone
 * takes it; any other news offers a refresh. The page itself is rendered by the server.
 * The kinds are listed in server/notifications/kinds.py (a test keeps the two in step). */
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.WebSocket) return;
  var S = live.dataset;
  var openedAt = Date.now();
  var KEY = "dari.notifications.last";
  var lastId = 0;
  try { lastId = parseInt(localStorage.getItem(KEY) || "0", 10) || 0; } catch (e) { /* private mode */ }

  var RING_ALWAYS = ["urgent.ring", "urgent.escalated"];
  var RING_IF_URGENT = ["consult.requested", "consult.overdue"];
  var STOP_RING = ["urgent.taken", "urgent.accepted"];
  var ringingFor = {};  // consult public id -> true while it rings

  /** The consult a notification is about: consults say "consult", scheduling "consult_id". */
  function consultOf(n) {
    var p = n.payload || {};
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
      var ctx = new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.35].forEach(function (at) {
        var osc = ctx.createOscillator(), gain = ctx.createGain();
        osc.frequency.value = 880;
        gain.gain.value = 0.2;
        osc.connect(gain);
        gain.connect(ctx.destination);
        osc.start(ctx.currentTime + at);
        osc.stop(ctx.currentTime + at + 0.2);
      });
    } catch (e) { /* no sound without a user gesture: the banner still rings */ }
  }

  function announce(ringing, newRing) {
    live.textContent = "";
    live.appendChild(document.createTextNode((ringing ? S.ring : S.new) + " "));
    var again = document.createElement("a");
    again.href = location.pathname;
    again.textContent = S.reload;
    live.appendChild(again);
    live.classList.toggle("is-ringing", ringing);
    if (newRing) beep();
  }

  function onNotification(n) {
    if (n.id > lastId) {
      lastId = n.id;
      try { localStorage.setItem(KEY, String(lastId)); } catch (e) { /* ignore */ }
    }
    // What happened before this page was drawn is already on it.
    var at = Date.parse(n.created_at);
    if (!isNaN(at) && at < openedAt - 30000) return;
    window.dariInbox.received.push(n);
    var newRing = rings(n);
    if (newRing) ringingFor[consultOf(n)] = true;
    else if (stopsRinging(n)) delete ringingFor[consultOf(n)];
    announce(Object.keys(ringingFor).length > 0, newRing);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var ws = new WebSocket(scheme + "//" + location.host + S.ws);
    var ping = null;
    ws.onopen = function () {
      ws.send(JSON.stringify({ v: 1, type: "subscribe", after_id: lastId }));
      ping = setInterval(function () { ws.send(JSON.stringify({ v: 1, type: "ping" })); }, 10000);
    };
    ws.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "notification") onNotification(frame);
    };
    ws.onclose = function (event) {
      clearInterval(ping);
      if (event.code !== 4403) setTimeout(connect, 5000);
    };
  }

  window.dariInbox = {
    rings: rings,
    stopsRinging: stopsRinging,
    consultOf: consultOf,
    ringing: function () { return Object.keys(ringingFor); },
    received: []
  };
  connect();
})();
