/* The call page's shared state: settings and strings, the call, the signaling client, timers. */

import { Timers } from "../lib/timers.js";
import { translator } from "../lib/page.js";
import { newLinkState } from "./link.js";

export const root = document.getElementById("call");
export const cfg = root ? root.dataset : {};
const strings = document.getElementById("call-strings");
export const t = translator(strings ? strings.dataset : {});

export const timers = new Timers(); // hang-up clears them all

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
  link: newLinkState(),
  ended: false,
  weakRun: 0,
  audioWeakRun: 0,
  samples: [],
  last: {},
  outbox: [],
  glare: { ignored: 0, rolledBack: 0 },
};

export const signaling = { client: null };

export const peerList = () => Array.from(state.peers.values());

/** False when the socket is down (nothing is queued here). */
export function send(frame) {
  frame.v = 1;
  return signaling.client ? signaling.client.send(frame) : false;
}
