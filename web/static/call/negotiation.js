/* Peers and perfect negotiation (docs/signaling.md "Who offers, who is polite"): one
 * RTCPeerConnection per peer, roles from the server, ICE restarted after a network change. */

import { MEDIA_LOST_OFFER_MS, RECONNECT_SETTLE_MS, tuneOpus } from "./link.js";
import { applySenderParameters, attachLocalTracks } from "./media.js";
import { sampleStats } from "./quality.js";
import { cfg, send, signaling, state, timers } from "./state.js";
import {
  clearError, errorName, hideBanner, setStatus, showBanner, showError, showRemoteTrack, updateEmpty,
} from "./ui.js";

const DISCONNECTED_GRACE_MS = 4000; // "disconnected" this long: restart ICE ourselves
const ICE_GIVE_UP_MS = 15000;       // still not connected this long after "failed": say so

export function addPeer(info) {
  const peer = state.peers.get(info.peer_id) || {
    id: info.peer_id,
    name: info.name || "",
    kind: info.kind || "user",
    pc: null, // startConnection() sets the connection's own fields
    queue: Promise.resolve(),
    tiles: new Map(),
    senders: {},
  };
  peer.polite = info.polite !== false;
  peer.offer = info.offer || "any";
  setAway(peer, !!info.away);
  state.peers.set(peer.id, peer);
  return peer;
}

function failed(peer, e) {
  // hung up, or the peer left meanwhile: nothing left to do
  if (state.ended || !peer.pc || peer.pc.signalingState === "closed") return;
  if (window.console) console.warn("negotiation", peer.id, e);
  showError(peer.id, "negotiationFailed", { error: errorName(e) });
}

export function withPeer(id, work) {
  const peer = state.peers.get(id) || addPeer({ peer_id: id });
  // One frame at a time per peer: a candidate must never overtake its description.
  peer.queue = peer.queue.then(() => work(peer)).catch((e) => failed(peer, e));
  return peer.queue;
}

export function startConnection(peer, withTracks) {
  if (peer.pc && peer.pc.connectionState !== "closed") return peer.pc;
  const pc = new RTCPeerConnection({
    iceServers: state.iceServers,
    iceTransportPolicy: cfg.icePolicy === "relay" ? "relay" : "all",
  });
  Object.assign(peer, { pc, senders: {}, makingOffer: false, ignoreOffer: false, prev: null, failedAt: 0 });
  pc.onicecandidate = ({ candidate: c }) =>
    send(c ? { type: "candidate", to: peer.id, candidate: c.toJSON() } : { type: "end-of-candidates", to: peer.id });
  pc.onnegotiationneeded = () => negotiate(peer, pc);
  pc.ontrack = (e) => showRemoteTrack(peer, e.track, e.streams[0]);
  pc.onconnectionstatechange = () => onConnectionState(peer, pc);
  if (withTracks) attachLocalTracks(peer);
  return pc;
}

async function negotiate(peer, pc) {
  if (peer.offer === "peer" || peer.pc !== pc) return;
  try {
    peer.makingOffer = true;
    await pc.setLocalDescription();
    send({ type: pc.localDescription.type, to: peer.id, sdp: pc.localDescription.sdp });
  } catch (e) {
    if (peer.pc === pc) failed(peer, e);
  } finally {
    peer.makingOffer = false;
  }
}

export async function onDescription(peer, f) {
  let pc = peer.pc;
  const offer = f.type === "offer";
  if (offer && (!pc || pc.connectionState === "failed" || pc.connectionState === "closed")) {
    if (pc) closePeer(peer);
    pc = startConnection(peer, false);
  }
  if (!pc) return;
  // Opus FEC/DTX: the description we apply configures our own encoder (link.js)
  const description = { type: f.type, sdp: tuneOpus(f.sdp) };
  const collision = offer && (peer.makingOffer || pc.signalingState !== "stable");
  peer.ignoreOffer = !peer.polite && collision;
  if (peer.ignoreOffer) { // impolite: our offer wins
    state.glare.ignored++;
    return;
  }
  if (collision) { // polite: roll ours back, take theirs
    state.glare.rolledBack++;
    await pc.setLocalDescription({ type: "rollback" });
  }
  await pc.setRemoteDescription(description);
  if (offer) {
    attachLocalTracks(peer);
    await pc.setLocalDescription();
    send({ type: "answer", to: peer.id, sdp: pc.localDescription.sdp });
  }
}

export async function onCandidate(peer, candidate) {
  if (!peer.pc) return;
  try {
    await peer.pc.addIceCandidate(candidate || undefined);
  } catch (e) {
    if (!peer.ignoreOffer) throw e;
  }
}

function onConnectionState(peer, pc) {
  if (peer.pc !== pc) return;
  const s = pc.connectionState;
  if (s === "connected") {
    peer.failedAt = 0;
    if (peer.everConnected) {
      // back after a cut: the first samples still count its losses
      peer.prev = null;
      state.link.settleUntil = Date.now() + RECONNECT_SETTLE_MS;
    }
    peer.everConnected = true;
    clearError(peer.id);
    hideBanner("iceRestart");
    applySenderParameters(peer);
    sampleStats(); // now, not a period later: an edge link shows at once
  } else if (s === "failed") {
    // network change: restart ICE, say so if that fails
    if (!peer.failedAt) {
      peer.failedAt = Date.now();
      timers.after(ICE_GIVE_UP_MS, () => {
        // A path never found may be a firewall; a link that worked and dropped is a cut,
        // which the media-lost banner speaks of (quality.js), not this.
        if (peer.pc === pc && pc.connectionState !== "connected" && !peer.everConnected) {
          showError(peer.id, "iceFailed");
        }
      });
    }
    restartIce(peer);
  } else if (s === "disconnected") {
    timers.after(DISCONNECTED_GRACE_MS, () => {
      if (peer.pc === pc && pc.connectionState === "disconnected") restartIce(peer);
    });
  }
  updateStatus();
}

function restartIce(peer) {
  if (!peer.pc) return;
  // a long cut's written-consult offer stays up
  const offering = state.link.downSince && Date.now() - state.link.downSince >= MEDIA_LOST_OFFER_MS;
  if (!offering) showBanner("iceRestart");
  if (peer.offer === "peer") send({ type: "ice-restart", to: peer.id });
  else peer.pc.restartIce();
}

export function onIceRestart(from, reason) {
  const peer = state.peers.get(from);
  if (!peer) return;
  if (peer.away) {
    setAway(peer, false);
    setStatus("peerBack", { name: peer.name });
  }
  if (!peer.pc || peer.pc.connectionState === "closed") {
    startConnection(peer, true);
    return;
  }
  if (reason === "reconnected" && peer.pc.connectionState === "connected") {
    // Only its signaling link came back (a server process died, say): the media path
    // still works, so no ICE restart. An offer of ours it may have missed meanwhile
    // is sent again; if the path breaks later, onConnectionState restarts ICE.
    const pc = peer.pc;
    if (pc.signalingState === "have-local-offer" && pc.localDescription) {
      send({ type: "offer", to: peer.id, sdp: pc.localDescription.sdp });
    }
    return;
  }
  peer.pc.restartIce();
}

/** The peer's link to signaling dropped: it may resume (then `ice-restart`) or, after its
 * window, leave (`peer-left`). Its connection stays up meanwhile: media may still flow. */
export function onPeerAway(id) {
  const peer = state.peers.get(id);
  if (!peer) return;
  setAway(peer, true);
  setStatus("peerAway", { name: peer.name });
}

function setAway(peer, away) {
  peer.away = away;
  peer.tiles.forEach((tile) => {
    if (away) tile.dataset.away = "1";
    else delete tile.dataset.away;
  });
}

/** After a `welcome`: a fresh peer id starts over, a resumed one catches up on who came and went. */
export function syncPeers(list, resumed) {
  if (!resumed) closeAllPeers();
  const present = new Set(list.map((info) => info.peer_id));
  state.peers.forEach((peer, id) => {
    if (!present.has(id)) forgetPeer(peer);
  });
  list.forEach((info) => {
    const known = state.peers.has(info.peer_id);
    const wasAway = known && state.peers.get(info.peer_id).away;
    const peer = addPeer(info);
    if (wasAway && !peer.away) setStatus("peerBack", { name: peer.name });
    if (!known && peer.offer !== "peer") startConnection(peer, true);
  });
}

export function onPeerJoined(info) {
  const peer = addPeer(info);
  // The newcomer offers; we only prepare for it unless we are the sole offerer.
  if (peer.offer === "you") startConnection(peer, true);
  setStatus("peerJoined", { name: peer.name });
}

export function onPeerLeft(id) {
  const peer = state.peers.get(id);
  if (!peer) return;
  forgetPeer(peer);
  setStatus("peerLeft", { name: peer.name });
}

function forgetPeer(peer) {
  closePeer(peer);
  state.peers.delete(peer.id);
  clearError(peer.id);
}

export function closePeer(peer) {
  if (peer.pc) {
    peer.pc.onnegotiationneeded = null;
    peer.pc.onconnectionstatechange = null;
    peer.pc.close();
  }
  peer.pc = null;
  peer.tiles.forEach((tile) => tile.remove());
  peer.tiles.clear();
  updateEmpty();
}

export function closeAllPeers() {
  state.peers.forEach(forgetPeer);
  state.peers.clear();
}

export function updateStatus() {
  if (state.ended || !signaling.client || !signaling.client.isOpen()) return;
  const away = Array.from(state.peers.values()).find((peer) => peer.away);
  if (away) {
    setStatus("peerAway", { name: away.name });
    return;
  }
  let connected = 0;
  let total = 0;
  state.peers.forEach((peer) => {
    if (peer.kind === "guest" && !peer.pc) return;
    total++;
    if (peer.pc && peer.pc.connectionState === "connected") connected++;
  });
  setStatus(total === 0 ? "waiting" : connected > 0 ? "connected" : "connecting");
}
