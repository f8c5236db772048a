/* Local media and what we send: camera and microphone, screen share, the senders'
 * priority and bitrate cap, and audio only (manual or automatic). */

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
  // Modest resolution and frame rate: a rural uplink carries 360p at 15 fps well.
  const video = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 15, max: 24 } };
  if (cam) video.deviceId = { ideal: cam };
  for (const ask of [{ audio, video }, { audio, video: false }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(ask);
    } catch (e) { /* try the next, smaller ask */ }
  }
  showBanner("mediaDenied");
  return new MediaStream();
}

export function localTrack(kind) {
  if (!state.local) return null;
  const list = kind === "audio" ? state.local.getAudioTracks() : state.local.getVideoTracks();
  return list[0] || null;
}

export function stopLocal() {
  if (state.local) state.local.getTracks().forEach((tr) => tr.stop());
}

export function attachLocalTracks(peer) {
  const pc = peer.pc;
  const have = pc.getSenders().map((s) => s.track);
  const audio = localTrack("audio");
  const video = localTrack("video");
  if (audio && have.indexOf(audio) < 0) peer.senders.audio = pc.addTrack(audio, state.local);
  if (video && have.indexOf(video) < 0) peer.senders.video = pc.addTrack(video, state.local);
  // Without a camera or microphone we still want to see and hear the other side.
  const kinds = pc.getTransceivers().map((tr) => tr.receiver.track.kind);
  if (!audio && kinds.indexOf("audio") < 0) pc.addTransceiver("audio", { direction: "recvonly" });
  if (!video && kinds.indexOf("video") < 0) pc.addTransceiver("video", { direction: "recvonly" });
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
    const settings = peer.senders.video.track.getSettings ? peer.senders.video.track.getSettings() : {};
    tuneVideo(params, enc, state.link, cap, settings.height);
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

export function toggleMic() {
  const audio = localTrack("audio");
  state.micOn = !state.micOn;
  if (audio) audio.enabled = state.micOn;
  setPressed($("btn-mic"), !state.micOn, state.micOn ? "mute" : "unmute");
}

export function toggleCamera() {
  const video = localTrack("video");
  state.camOn = !state.camOn;
  if (video) video.enabled = state.camOn;
  setPressed($("btn-camera"), !state.camOn, state.camOn ? "cameraOff" : "cameraOn");
}

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
    // The user's own "video on" holds off the automatic fall-back for a while; the
    // automatic return does not (link.js backs off instead).
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
  if (state.ended) {
    stream.getTracks().forEach((tr) => tr.stop());
    return undefined;
  }
  state.screen = stream;
  const screenTrack = stream.getVideoTracks()[0];
  screenTrack.contentHint = "detail"; // an X-ray must stay sharp; frame rate may drop
  screenTrack.onended = stopScreen;
  // A new track means renegotiation; perfect negotiation keeps either side free to do it.
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
  state.screen.getTracks().forEach((tr) => tr.stop());
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
