/* Dari call page (docs/web.md, docs/signaling.md): wires the modules together and owns the
 * call's life: start, signaling, hang-up. */

import { $, onPageExit, post } from "./lib/page.js";
import { connect } from "./lib/ws-client.js";
import { flushOutbox, onChat, sendChat } from "./call/chat.js";
import { copyInvite, invite, onKnock, redeemGuest, removeKnock } from "./call/lobby.js";
import {
  applyAll, openLocalMedia, savedDevice, setAudioOnly, stopLocal, stopScreen,
  toggleCamera, toggleMic, toggleScreen,
} from "./call/media.js";
import {
  closeAllPeers, onCandidate, onDescription, onIceRestart, onPeerAway, onPeerJoined,
  onPeerLeft, syncPeers, updateStatus, withPeer,
} from "./call/negotiation.js";
import { cleanForVideo, nextTier, tierOf, tuneOpus, videoCapKbps } from "./call/link.js";
import { adapt, reportQuality, sampleStats } from "./call/quality.js";
import { REPORT_EVERY_MS, STATS_EVERY_MS, linkLevel, tooWeakForAudio, tooWeakForVideo } from "./call/rules.js";
import { cfg, peerList, root, send, signaling, state, t, timers } from "./call/state.js";
import { clearError, hideBanner, setStatus, showBanner, showError } from "./call/ui.js";

function handleFrame(f) {
  switch (f.type) {
    case "welcome": return onWelcome(f);
    case "lobby": return setStatus("lobbyWaiting");
    case "knock": return onKnock(f.peer);
    case "peer-joined":
      removeKnock(f.peer && f.peer.peer_id);
      return onPeerJoined(f.peer);
    case "peer-left":
      removeKnock(f.peer_id);
      return onPeerLeft(f.peer_id);
    // Its signaling link (or the server process holding it) dropped: keep the call.
    case "peer-away": return onPeerAway(f.peer_id);
    case "offer":
    case "answer":
      return withPeer(f.from, (peer) => onDescription(peer, f));
    case "candidate":
      return withPeer(f.from, (peer) => onCandidate(peer, f.candidate));
    case "end-of-candidates":
      return withPeer(f.from, (peer) => onCandidate(peer, null));
    case "ice-restart": return onIceRestart(f.from, f.reason);
    case "chat": return onChat(f);
    case "error": return onError(f);
    default: return undefined;
  }
}

function onWelcome(f) {
  const resumed = !!f.resumed && f.peer_id === state.peerId;
  state.peerId = f.peer_id;
  state.resumeToken = f.resume_token;
  state.iceServers = f.ice_servers || [];
  state.heartbeatS = f.heartbeat_s || 15;
  hideBanner("reconnecting");
  hideBanner("offline");
  clearError("signaling");
  syncPeers(f.peers || [], resumed);
  flushOutbox();
  updateStatus();
}

function onError(f) {
  if (f.code === "room_full") return setStatus("callFull");
  if (window.console) console.warn("signaling error", f.code, f.message);
  if (f.code === "unknown_peer") return undefined; // a peer that just left: a harmless race
  showError("signaling", "signalingError", { code: f.code });
  timers.after(15000, () => clearError("signaling"));
  return undefined;
}

function onSocketDown({ code, final }) {
  if (state.ended) return;
  if (final) {
    if (code === 4409) setStatus("replaced"); // another tab took over: never fight it
    else if (code === 4429) setStatus("callFull");
    else setStatus(cfg.guest ? "refused" : "denied");
    return;
  }
  const offline = navigator.onLine === false ? "offline" : "reconnecting";
  setStatus(offline);
  showBanner(offline);
}

function connectSignaling() {
  signaling.client = connect({
    path: cfg.ws + "/room",
    // per (re)join: the latest single-use resume token keeps our peer id
    hello: () => ({
      v: 1, type: "join", room: state.room, token: state.joinToken,
      resume_token: state.resumeToken, can_rollback: true,
    }),
    onFrame: handleFrame,
    onDown: onSocketDown,
    ping: () => ({ v: 1, type: "ping", ts: Date.now() }),
    silenceMs: () => Math.max(12000, state.heartbeatS * 1000),
    baseMs: 500,
    maxMs: 5000,
    finalCodes: [4403, 4409, 4429], // refused or denied, opened in another tab, call full
  });
}

/** Stop everything the call owns; shared notes close once their last edit is saved. */
function endCall() {
  if (state.ended) return;
  state.ended = true;
  send({ type: "leave" });
  if (signaling.client) signaling.client.close(1000);
  timers.clear();
  closeAllPeers();
  stopLocal();
  stopScreen();
  document.dispatchEvent(new CustomEvent("dari:call-ended"));
}

function hangUp() {
  endCall();
  setStatus("ended");
  if (cfg.consultUrl) location.href = cfg.consultUrl;
}

async function continueInWriting(event) {
  event.preventDefault();
  if (cfg.switchUrl) {
    try {
      // whatever the answer (already switched, say), the thread opens
      await post(cfg.switchUrl, new URLSearchParams({ mode: "async", reason: t("writingReason") }));
    } catch (e) { /* offline: the thread link works when the network is back */ }
  }
  endCall();
  location.href = cfg.threadUrl;
}

function wireControls() {
  $("btn-mic").onclick = toggleMic;
  $("btn-camera").onclick = toggleCamera;
  $("btn-screen").onclick = toggleScreen;
  $("btn-audio-only").onclick = () => setAudioOnly(!state.audioOnly, false);
  $("btn-hangup").onclick = hangUp;
  $("chat-form").onsubmit = sendChat;
  ["btn-writing", "call-banner-writing"].forEach((id) => {
    if ($(id)) $(id).onclick = continueInWriting;
  });
  const cap = $("bandwidth");
  cap.onchange = () => {
    state.capKbps = parseInt(cap.value, 10) || 0;
    applyAll();
  };
  const savedCap = savedDevice("cap"); // the pre-call check's recommendation
  if (savedCap && cap.querySelector('option[value="' + savedCap + '"]')) {
    cap.value = savedCap;
    state.capKbps = parseInt(savedCap, 10) || 0;
  }
  if ($("invite")) $("invite").onclick = invite;
  if ($("invite-copy")) $("invite-copy").onclick = copyInvite;
}

async function start() {
  wireControls();
  onPageExit(endCall);
  if (!navigator.mediaDevices || !window.RTCPeerConnection) showBanner("mediaDenied", null, true);
  state.local = navigator.mediaDevices ? await openLocalMedia() : new MediaStream();
  $("local-video").srcObject = state.local;
  if (cfg.guest) {
    try {
      await redeemGuest();
    } catch (e) {
      setStatus("refused");
      return;
    }
  }
  if (state.ended) return; // left while the camera was starting
  addEventListener("offline", () => {
    if (state.ended) return;
    showBanner("offline");
    setStatus("offline");
  });
  addEventListener("online", () => hideBanner("offline")); // the client reconnects itself
  timers.every(STATS_EVERY_MS, sampleStats);
  timers.every(REPORT_EVERY_MS, reportQuality);
  connectSignaling();
}

const peersWithPc = () => peerList().filter((p) => p.pc);

if (root) {
  // For tests and curious engineers.
  window.dariCall = {
    state,
    rules: { linkLevel, tooWeakForVideo, tooWeakForAudio },
    link: { tierOf, nextTier, tuneOpus, videoCapKbps, cleanForVideo },
    setAudioOnly,
    adapt,
    sampleStats,
    hangUp,
    dropSignaling: () => signaling.client && signaling.client.drop(4000),
    socketOpen: () => !!signaling.client && signaling.client.isOpen(),
    receive: handleFrame, // a frame as if the server had sent it
    liveTimers: () => timers.size + (signaling.client ? signaling.client.liveTimers() : 0),
    // Sum of an inbound-rtp field over the peers: ("framesDecoded", "video"), ("bytesReceived")
    inbound: async (field, kind) => {
      let total = 0;
      for (const peer of peersWithPc()) {
        (await peer.pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && (!kind || s.kind === kind)) total += s[field] || 0;
        });
      }
      return total;
    },
    connectionStates: () => peerList().map((p) => (p.pc ? p.pc.connectionState : "none")),
    peerIds: () => peerList().map((p) => p.id),
    awayPeers: () => peerList().filter((p) => p.away).map((p) => p.id),
    senderParameters: () => {
      const peer = peersWithPc()[0];
      if (!peer) return null;
      const out = {};
      ["audio", "video"].forEach((kind) => {
        const sender = peer.senders[kind];
        out[kind] = sender ? sender.getParameters().encodings[0] || {} : null;
      });
      return out;
    },
  };
  start();
}
