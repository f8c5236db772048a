/* The one WebSocket client of the call page, the shared notes panel and the inbox.
 *
 * It connects, sends the protocol's first frame on every new socket (built afresh each
 * time, so it carries the latest resume token, note revision or last notification id:
 * that is how each protocol resumes), keeps a heartbeat, treats a silent socket as dead,
 * reconnects with exponential back-off and jitter (at once when the browser comes back
 * online), never reconnects after a final close code, and close() leaves no socket and
 * no timer behind. The protocols on top: docs/signaling.md (/ws/room, /ws/user) and
 * docs/notes.md (/notes/ws/…). */

import { Timers } from "./timers.js";

/** Delay before reconnect attempt `n` (from 0): doubling from `baseMs` up to `maxMs`, of
 * which the second half is random ("equal jitter"), so that clients dropped together by a
 * server restart do not all come back in the same instant. */
export function backoff(n, baseMs, maxMs, random = Math.random) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** n);
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** ws: or wss: URL of a path on this site. */
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return scheme + "//" + location.host + path;
}

const DEFAULTS = {
  path: "",                    // e.g. "/ws/user"
  hello: null,                 // () => first frame of each socket (join, subscribe), or null
  onFrame: () => {},           // (frame) for each JSON frame received (other text is ignored)
  onConnecting: () => {},      // a new socket is being opened
  onDown: () => {},            // ({code, final, delayMs}) the socket is gone; final: no retry
  ping: () => ({ type: "ping" }),
  pingMs: 5000,                // heartbeat period
  silenceMs: 20000,            // number or () => number: nothing heard for this long = dead link
  connectMs: 15000,            // a connection attempt stuck this long is abandoned
  baseMs: 1000,                // back-off: first delay (before jitter) …
  maxMs: 30000,                // … and the longest
  finalCodes: [4403],          // close codes after which we never reconnect on our own
};

/** Open a client; it connects at once. */
export function connect(options) {
  const o = { ...DEFAULTS, ...options };
  const timers = new Timers();
  let ws = null;
  let openedAt = 0;
  let lastHeard = 0;
  let attempt = 0;
  let retry = null;
  let closed = false;

  function open() {
    retry = null;
    if (closed || ws) return;
    const socket = new WebSocket(socketUrl(o.path));
    ws = socket;
    openedAt = Date.now();
    let heard = false;
    o.onConnecting();
    socket.onopen = () => {
      lastHeard = Date.now();
      const first = o.hello && o.hello();
      if (first) socket.send(JSON.stringify(first));
    };
    socket.onmessage = (event) => {
      lastHeard = Date.now();
      if (!heard) {
        heard = true;
        attempt = 0; // the server answered: the next drop starts the back-off afresh
      }
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      o.onFrame(frame);
    };
    socket.onclose = (event) => {
      if (ws === socket) down(event.code);
    };
  }

  function detach(socket) {
    socket.onopen = socket.onmessage = socket.onclose = null;
  }

  function down(code) {
    ws = null;
    const final = o.finalCodes.includes(code);
    let delayMs = null;
    if (!final) {
      delayMs = backoff(attempt++, o.baseMs, o.maxMs);
      retry = timers.after(delayMs, open);
    }
    o.onDown({ code, final, delayMs });
  }

  /** Give up on the current socket as if the link had dropped; reconnect after the back-off. */
  function drop(code) {
    const dead = ws;
    if (!dead || closed) return;
    detach(dead);
    try {
      if (code) dead.close(code);
      else dead.close();
    } catch (e) { /* already closing */ }
    down(1006);
  }

  function beat() {
    if (!ws) return;
    if (ws.readyState === WebSocket.CONNECTING) {
      if (Date.now() - openedAt > o.connectMs) drop(); // stuck on a dead link
      return;
    }
    if (ws.readyState !== WebSocket.OPEN) return;
    const silence = typeof o.silenceMs === "function" ? o.silenceMs() : o.silenceMs;
    // A socket whose network vanished may never report close: give up on it ourselves.
    if (Date.now() - lastHeard > silence) {
      drop();
      return;
    }
    send(o.ping());
  }

  function send(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function onOnline() {
    if (closed || ws) return;
    timers.cancel(retry);
    attempt = 0;
    open();
  }

  /** For good: close the socket, clear every timer, never reconnect. */
  function close(code = 1000) {
    if (closed) return;
    closed = true;
    timers.clear();
    removeEventListener("online", onOnline);
    const socket = ws;
    ws = null;
    if (socket) {
      detach(socket);
      try {
        socket.close(code);
      } catch (e) { /* already closing */ }
    }
  }

  addEventListener("online", onOnline);
  timers.every(o.pingMs, beat);
  open();

  return {
    send,
    drop,
    close,
    isOpen: () => !!ws && ws.readyState === WebSocket.OPEN,
    isClosed: () => closed,
    liveTimers: () => timers.size,
  };
}
