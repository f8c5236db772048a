/* The one WebSocket client (call, notes, inbox). `hello` is built afresh for each socket:
 * that is how each protocol resumes (docs/signaling.md, docs/notes.md). */

import { Timers } from "./timers.js";

/** Delay before attempt `n`: doubling up to `maxMs`, half of it random ("equal jitter") so
 * that clients dropped by a server restart do not all come back at once. */
export function backoff(n, baseMs, maxMs, random = Math.random) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** n);
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** The server closed a socket that stopped reading (its send queue overflowed,
 * docs/signaling.md). Never final: the page reconnects and resumes (`hello`). */
export const TOO_SLOW = 4413;

export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return scheme + "//" + location.host + path;
}

const DEFAULTS = {
  path: "",
  hello: null,           // () => first frame of each socket, or null
  onFrame: () => {},     // each JSON frame (other text is ignored)
  onConnecting: () => {},
  onDown: () => {},      // ({code, final, delayMs}); final: no retry
  ping: () => ({ type: "ping" }),
  pingMs: 5000,
  silenceMs: 20000,      // or () => number: nothing heard this long = dead link
  connectMs: 15000,      // a connection attempt stuck this long is abandoned
  baseMs: 1000,
  maxMs: 30000,
  finalCodes: [4403],    // never reconnect on our own after these (TOO_SLOW never counts)
};

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
    o.onConnecting();
    socket.onopen = () => {
      lastHeard = Date.now();
      const first = o.hello && o.hello();
      if (first) socket.send(JSON.stringify(first));
    };
    socket.onmessage = (event) => {
      lastHeard = Date.now();
      attempt = 0; // the server answered: the next drop starts the back-off afresh
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

  function shut(socket, code) {
    socket.onopen = socket.onmessage = socket.onclose = null;
    try {
      socket.close(code);
    } catch (e) { /* already closing */ }
  }

  function down(code) {
    ws = null;
    const final = code !== TOO_SLOW && o.finalCodes.includes(code);
    let delayMs = null;
    if (!final) {
      delayMs = backoff(attempt++, o.baseMs, o.maxMs);
      retry = timers.after(delayMs, open);
    }
    o.onDown({ code, final, delayMs });
  }

  /** Give up on the socket as if the link had dropped; reconnect after the back-off. */
  function drop(code) {
    if (!ws || closed) return;
    shut(ws, code || undefined);
    down(1006);
  }

  function beat() {
    if (!ws) return;
    if (ws.readyState === WebSocket.CONNECTING) {
      if (Date.now() - openedAt > o.connectMs) drop(); // stuck on a dead link
      return;
    }
    if (!isOpen()) return;
    const silence = typeof o.silenceMs === "function" ? o.silenceMs() : o.silenceMs;
    // A socket whose network vanished may never report close: give up on it ourselves.
    if (Date.now() - lastHeard > silence) drop();
    else send(o.ping());
  }

  const isOpen = () => !!ws && ws.readyState === WebSocket.OPEN;

  function send(frame) {
    if (!isOpen()) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function onOnline() {
    if (closed || ws) return;
    timers.cancel(retry);
    attempt = 0;
    open();
  }

  /** For good: no socket, no timer, no reconnect. */
  function close(code = 1000) {
    if (closed) return;
    closed = true;
    timers.clear();
    removeEventListener("online", onOnline);
    if (ws) shut(ws, code);
    ws = null;
  }

  addEventListener("online", onOnline);
  timers.every(o.pingMs, beat);
  open();

  return {
    send,
    drop,
    close,
    isOpen,
    isClosed: () => closed,
    liveTimers: () => timers.size,
  };
}
