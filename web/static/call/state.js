/* The call page's state, shared by its modules: the page's settings and strings, what is
 * known about the call, the signaling client, and the registry of the call's timers. */

import { Timers } from "../lib/timers.js";
import { translator } from "../lib/page.js";
import { newLinkState } from "./link.js";

export const root = document.getElementById("call");
export const cfg = root ? root.dataset : {};
const strings = document.getElementById("call-strings");
export const t = translator(strings ? strings.dataset : {});

/** The call's own timers (stats, delayed ICE restarts…); hang-up clears them all. */
export const timers = new Timers();

export const state = {
  room: cfg.room,
  peerId: null,
  resumeToken: null,
  joinToken: null,
  iceServers: [],
  heartbeatS: 15,
  peers: new Map(),
  local: null,
  screen: null,
  micOn: true,
  camOn: true,
  audioOnly: false,
  audioOnlyAuto: false,
  autoPausedUntil: 0,
  capKbps: 0,
  link: newLinkState(), // link.js: the tier and the automatic video fall-back and return
  ended: false,
  weakRun: 0,
  audioWeakRun: 0,
  samples: [],
  last: {},
  outbox: [],
  glare: { ignored: 0, rolledBack: 0 },
};

/** The signaling connection (lib/ws-client.js), set when the call starts. */
export const signaling = { client: null };

/** Send a frame of protocol v1; false when the socket is down (nothing is queued here). */
export function send(frame) {
  frame.v = 1;
  return signaling.client ? signaling.client.send(frame) : false;
}
