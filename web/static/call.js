/* Dari call page: WebRTC with perfect negotiation over Dari's signaling (docs/signaling.md).
 * Our own ES modules, no framework, no build step (layout: docs/web.md). Strings come
 * translated from the page (#call-strings), so every word on screen goes through the
 * server's catalog. This module wires the parts together and owns the call's life:
 * start, the signaling connection, hang-up. */

import { $, csrf, onPageExit } from "./lib/page.js";
import { connect } from "./lib/ws-client.js";
import { flushOutbox, onChat, sendChat } from "./call/chat.js";
import { copyInvite, invite, onKnock, redeemGuest, removeKnock } from "./call/lobby.js";
import {
  applyAll, openLocalMedia, savedDevice, setAudioOnly, stopLocal, stopScreen,
  toggleCamera, toggleMic, toggleScreen,
} from "./call/media.js";
import {
  closeAllPeers, onCandidate, onDescription, onIceRestart, onPeerJoined,
  onPeerLeft, syncPeers, updateStatus, withPeer,
} from "./call/negotiation.js";
import { cleanForVideo, nextTier, tierOf, tuneOpus, videoCapKbps } from "./call/link.js";
import { adapt, reportQuality, sampleStats } from "./call/quality.js";
import { REPORT_EVERY_MS, STATS_EVERY_MS, linkLevel, tooWeakForAudio, tooWeakForVideo } from "./call/rules.js";
import { cfg, root, send, signaling, state, t, timers } from "./call/state.js";
import { clearError, hideBanner, setStatus, showBanner, showError } from "./call/ui.js";

const SIGNALING_ERROR_SHOWN_MS = 15000;

// ---- Signaling ----

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
    case "offer":
    case "answer":
      return withPeer(f.from, (peer) => onDescription(peer, f));
    case "candidate":
      return withPeer(f.from, (peer) => onCandidate(peer, f.candidate));
    case "end-of-candidates":
      return withPeer(f.from, (peer) => onCandidate(peer, null));
    case "ice-restart": return onIceRestart(f.from);
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
  if (f.code === "room_full") {
    setStatus("callFull");
    return;
  }
  if (window.console) console.warn("signaling error", f.code, f.message);
  // A frame for a peer that has just left: a harmless race, nothing for the user to do.
  if (f.code === "unknown_peer") return;
  showError("signaling", "signalingError", { code: f.code });
  timers.after(SIGNALING_ERROR_SHOWN_MS, () => clearError("signaling"));
}

/** The socket is gone: say why; the client reconnects unless the close was final. */
function onSocketDown({ code, final }) {
  if (state.ended) return;
  if (final) {
    if (code === 4409) setStatus("replaced"); // another tab took over: never fight it
    else if (code === 4429) setStatus("callFull");
    else setStatus(cfg.guest ? "refused" : "denied");
    return;
  }
  const offline = navigator.onLine === false;
  setStatus(offline ? "offline" : "reconnecting");
  showBanner(offline ? "offline" : "reconnecting");
}

function connectSignaling() {
  signaling.client = connect({
    path: cfg.ws + "/room",
    // Every (re)join carries the latest single-use resume token: within the server's
    // grace we keep our peer id and the others restart ICE with us.
    hello: () => ({
      v: 1, type: "join", room: state.room, token: state.joinToken,
      resume_token: state.resumeToken, can_rollback: true,
    }),
    onFrame: handleFrame,
    onDown: onSocketDown,
    ping: () => ({ v: 1, type: "ping", ts: Date.now() }),
    pingMs: 5000,
    silenceMs: () => Math.max(12000, state.heartbeatS * 1000),
    baseMs: 500,
    maxMs: 5000,
    finalCodes: [4403, 4409, 4429], // refused or denied, opened in another tab, call full
  });
}

// ---- The end of the call ----

/** Stop everything the call owns: the leave frame, the socket and its heartbeat, every
 * timer, the peer connections, camera, microphone and screen. Shared notes on the page
 * close once their last edit is saved. */
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

/** One click from a failing call to the written thread: same consult, nothing retyped. */
async function continueInWriting(event) {
  event.preventDefault();
  if (cfg.switchUrl) {
    const form = new URLSearchParams({ mode: "async", reason: t("writingReason") });
    try {
      // Whatever the answer (already switched by the other side, say), the thread opens.
      await fetch(cfg.switchUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf() },
        body: form,
      });
    } catch (e) { /* offline: the thread link still works when the network is back */ }
  }
  endCall();
  location.href = cfg.threadUrl;
}

// ---- Start ----

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
  $("bandwidth").onchange = () => {
    state.capKbps = parseInt($("bandwidth").value, 10) || 0;
    applyAll();
  };
  const savedCap = savedDevice("cap"); // set by the pre-call check's recommendation
  if (savedCap && $("bandwidth").querySelector('option[value="' + savedCap + '"]')) {
    $("bandwidth").value = savedCap;
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

if (root) {
  // For tests and for curious engineers: read-only views and a few handles.
  window.dariCall = {
    state,
    rules: { linkLevel, tooWeakForVideo, tooWeakForAudio },
    link: { tierOf, nextTier, tuneOpus, videoCapKbps, cleanForVideo },
    setAudioOnly,
    adapt,
    sampleStats,
    hangUp,
    /** Drop the signaling socket as a lost link would (it reconnects and resumes). */
    dropSignaling: () => signaling.client && signaling.client.drop(4000),
    socketOpen: () => !!signaling.client && signaling.client.isOpen(),
    /** A frame as if the server had sent it. */
    receive: handleFrame,
    /** Timers still pending: the call's own and the signaling client's (0 after hang-up). */
    liveTimers: () => timers.size + (signaling.client ? signaling.client.liveTimers() : 0),
    inboundVideoFrames: async () => {
      let total = 0;
      for (const peer of state.peers.values()) {
        if (!peer.pc) continue;
        const report = await peer.pc.getStats();
        report.forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") total += s.framesDecoded || 0;
        });
      }
      return total;
    },
    connectionStates: () => Array.from(state.peers.values()).map((p) => (p.pc ? p.pc.connectionState : "none")),
    senderParameters: () => {
      const peer = Array.from(state.peers.values()).find((p) => p.pc);
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
