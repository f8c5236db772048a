/* Local media and what we send: camera, microphone, screen, sender parameters, audio only. */

import { $ } from "../lib/page.js";
import { tuneAudio, tuneVideo } from "./link.js";
import { AUTO_PAUSE_MS } from "./rules.js";
import { root, state } from "./state.js";
import { hideBanner, setPressed, showBanner } from "./ui.js";

/** A choice remembered by the pre-call page ("camera", "microphone", "cap"). */
export function savedDevice(kind) {
  try {
    return localStorage.getItem("dari." + kind) || undefined;
  } catch (e) {
    return undefined;
  }
}

export async function openLocalMedia() {
  const cam = savedDevice("camera");
  const mic = savedDevice("microphone");
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (mic) audio.deviceId = { ideal: mic };
  // A rural uplink carries 360p at 15 fps well.
  const video = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 15, max: 24 } };
  if (cam) video.deviceId = { ideal: cam };
  for (const ask of [{ audio, video }, { audio, video: false }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(ask);
    } catch (e) { /* try the smaller ask */ }
  }
  showBanner("mediaDenied");
  return new MediaStream();
}

export function localTrack(kind) {
  if (!state.local) return null;
  const list = kind === "audio" ? state.local.getAudioTracks() : state.local.getVideoTracks();
  return list[0] || null;
}

const stopAll = (stream) => stream.getTracks().forEach((tr) => tr.stop());

export function stopLocal() {
  if (state.local) stopAll(state.local);
}

export function attachLocalTracks(peer) {
  const pc = peer.pc;
  const have = pc.getSenders().map((s) => s.track);
  const both = ["audio", "video"];
  both.forEach((kind) => {
    const track = localTrack(kind);
    if (track && have.indexOf(track) < 0) peer.senders[kind] = pc.addTrack(track, state.local);
  });
  // Without a camera or microphone we still want to see and hear the other side.
  const kinds = pc.getTransceivers().map((tr) => tr.receiver.track.kind);
  both.forEach((kind) => {
    if (!localTrack(kind) && kinds.indexOf(kind) < 0) pc.addTransceiver(kind, { direction: "recvonly" });
  });
  if (state.screen && !peer.senders.screen) {
    peer.senders.screen = pc.addTrack(state.screen.getVideoTracks()[0], state.screen);
  }
  applySenderParameters(peer);
}

async function setEncoding(sender, change) {
  if (!sender || !sender.track) return;
  const params = sender.getParameters();
  if (!params.encodings || !params.encodings.length) params.encodings = [{}];
  params.encodings.forEach((enc) => change(enc, params));
  try {
    await sender.setParameters(params);
  } catch (e) { /* not negotiated yet: applied again after negotiation */ }
}

export function applySenderParameters(peer) {
  const cap = state.capKbps;
  // Audio keeps priority: on a congested link the browser starves video first.
  setEncoding(peer.senders.audio, (enc) => {
    enc.priority = "high";
    enc.networkPriority = "high";
    tuneAudio(enc, state.link);
  });
  setEncoding(peer.senders.video, (enc, params) => {
    const track = peer.senders.video.track;
    tuneVideo(params, enc, state.link, cap, (track.getSettings ? track.getSettings() : {}).height);
    enc.priority = "low";
    enc.active = !state.audioOnly;
  });
  setEncoding(peer.senders.screen, (enc) => {
    if (cap > 0) enc.maxBitrate = cap * 1000;
    else delete enc.maxBitrate;
    enc.priority = "low";
  });
}

export function applyAll() {
  state.peers.forEach((peer) => {
    if (peer.pc) applySenderParameters(peer);
  });
}

function toggle(kind, flag, button, onKey, offKey) {
  const track = localTrack(kind);
  const on = (state[flag] = !state[flag]);
  if (track) track.enabled = on;
  setPressed($(button), !on, on ? onKey : offKey);
}

export const toggleMic = () => toggle("audio", "micOn", "btn-mic", "mute", "unmute");
export const toggleCamera = () => toggle("video", "camOn", "btn-camera", "cameraOff", "cameraOn");

/** Pause our video (encoding inactive: no renegotiation, instant to undo). */
export function setAudioOnly(on, automatic) {
  state.audioOnly = on;
  state.audioOnlyAuto = on && !!automatic;
  state.weakRun = 0;
  state.link.cleanRun = 0;
  if (on) state.link.audioOnlySince = Date.now();
  setPressed($("btn-audio-only"), on, on ? "videoOn" : "audioOnly");
  root.classList.toggle("is-audio-only", on);
  applyAll();
  if (on) {
    showBanner(automatic ? "audioOnlyAuto" : "audioOnlyManual", {
      label: "videoBack",
      run: () => setAudioOnly(false),
    });
  } else {
    // Only the user's own "video on" holds off the automatic fall-back (link.js backs off).
    if (!automatic) state.autoPausedUntil = Date.now() + AUTO_PAUSE_MS;
    hideBanner("audioOnlyAuto");
    hideBanner("audioOnlyManual");
  }
}

export async function toggleScreen() {
  if (state.screen) return stopScreen();
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 5 }, audio: false });
  } catch (e) {
    return undefined; // the user cancelled the picker
  }
  if (state.ended) return stopAll(stream);
  state.screen = stream;
  const screenTrack = stream.getVideoTracks()[0];
  screenTrack.contentHint = "detail"; // an X-ray must stay sharp; frame rate may drop
  screenTrack.onended = stopScreen;
  state.peers.forEach((peer) => {
    if (!peer.pc) return;
    peer.senders.screen = peer.pc.addTrack(screenTrack, stream);
    applySenderParameters(peer);
  });
  setPressed($("btn-screen"), true, "stopShare");
  return undefined;
}

export function stopScreen() {
  if (!state.screen) return;
  stopAll(state.screen);
  state.screen = null;
  state.peers.forEach((peer) => {
    if (peer.pc && peer.senders.screen) {
      try {
        peer.pc.removeTrack(peer.senders.screen);
      } catch (e) { /* pc closed */ }
    }
    peer.senders.screen = null;
  });
  setPressed($("btn-screen"), false, "shareScreen");
}
