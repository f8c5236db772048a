/* Dari pre-call check: device preview and a link test against the server's echo peer
 * (docs/signaling.md "Echo peer"), through the same ICE servers (TURN with REST
 * credentials) and ICE transport policy as the call page. The recommendation uses the
 * call page's own link rules (call/link.js tiers, call/rules.js fall-back thresholds),
 * so it names the mode the call will settle in (docs/web.md "Pre-call check"). */

import { START_VIDEO_KBPS, TIERS, tierOf, tuneOpus } from "./call/link.js";
import { tooWeakForAudio, tooWeakForVideo } from "./call/rules.js";

/**
 * The plain recommendation from a link test (pure: tested on its own).
 * m = {connected, rttMs, lossPct, availableKbps, audio}: lossPct one way, rttMs the round
 * trip, with camera and microphone on; `audio` = {rttMs, lossPct} with the microphone
 * only (as the call runs after falling back; absent: the same figures).
 * Returns "video" | "low" (the call's weak tier: smaller video) | "audio" (the call
 * falls back to audio only) | "written" (the call would offer to continue in writing).
 */
export function recommend(m) {
  if (!m || !m.connected) return "written";
  // Not the bitrate estimate: the test sends at the call's start caps (76 kbps), so the
  // sender is app-limited and the estimate sits near the cap on any link (link.js tierOf).
  const s = { rttMs: m.rttMs, lossPct: m.lossPct };
  const audio = m.audio ? { rttMs: m.audio.rttMs, lossPct: m.audio.lossPct } : s;
  if (m.audio && !m.audio.connected) return "written"; // no probe came back without video
  if (tooWeakForAudio(audio)) return "written";
  const tier = tierOf(s);
  if (tier === "edge" || tooWeakForVideo(s)) return "audio";
  return tier === "weak" ? "low" : "video";
}

window.dariPrecall = { recommend: recommend, tierOf: tierOf, result: null };

const root = document.getElementById("precall");
const S = root ? document.getElementById("precall-strings").dataset : {};
function $(id) { return document.getElementById(id); }
var TEST_MS = 13000; // VIDEO_PHASE_MS + AUDIO_PHASE_MS
var stream = null;
var meterTimer = null;
var audioContext = null;

function remember(kind, id) {
  try { localStorage.setItem("dari." + kind, id); } catch (e) { /* private mode */ }
}

async function listDevices() {
  var devices = await navigator.mediaDevices.enumerateDevices();
  fill($("camera"), devices.filter(function (d) { return d.kind === "videoinput"; }), "camera");
  fill($("microphone"), devices.filter(function (d) { return d.kind === "audioinput"; }), "microphone");
}

function fill(select, devices, kind) {
  var current = stream && (kind === "camera" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0]);
  var currentId = current && current.getSettings ? current.getSettings().deviceId : null;
  select.textContent = "";
  devices.forEach(function (d, i) {
    var option = document.createElement("option");
    option.value = d.deviceId;
    option.textContent = d.label || kind + " " + (i + 1);
    if (d.deviceId === currentId) option.selected = true;
    select.appendChild(option);
  });
}

async function openDevices() {
  if (stream) stream.getTracks().forEach(function (tr) { tr.stop(); });
  var cam = $("camera").value, mic = $("microphone").value;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: mic ? { deviceId: { exact: mic } } : true,
      video: cam ? { deviceId: { exact: cam }, width: { ideal: 640 }, height: { ideal: 360 } }
        : { width: { ideal: 640 }, height: { ideal: 360 } },
    });
    $("device-error").hidden = true;
  } catch (e) {
    stream = null;
    $("device-error").hidden = false;
    return;
  }
  $("preview").srcObject = stream;
  await listDevices();
  startMeter();
}

function startMeter() {
  if (meterTimer) clearInterval(meterTimer);
  var audio = stream && stream.getAudioTracks()[0];
  if (!audio || !window.AudioContext) return;
  audioContext = audioContext || new AudioContext();
  var source = audioContext.createMediaStreamSource(new MediaStream([audio]));
  var analyser = audioContext.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  var data = new Uint8Array(analyser.fftSize);
  meterTimer = setInterval(function () {
    analyser.getByteTimeDomainData(data);
    var peak = 0;
    for (var i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i] - 128) / 128);
    $("mic-level").value = peak;
  }, 100);
}

function waitForGathering(pc) {
  return new Promise(function (resolve) {
    if (pc.iceGatheringState === "complete") return resolve();
    var timer = setTimeout(resolve, 3000); // a slow STUN/TURN server must not stall the test
    pc.addEventListener("icegatheringstatechange", function () {
      if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
    });
  });
}

var PING_MS = 100;
// First with camera and microphone (capped as the call starts them), then microphone only:
// the first phase says whether the link carries video, the second whether it carries
// speech once video is off, as the call then does.
var VIDEO_PHASE_MS = 7000;
var WARMUP_MS = 1500; // the first key frame's burst and the encoder's start do not count
var AUDIO_PHASE_MS = 6000;
var DRAIN_MS = 1500; // the queue video filled drains before the second phase counts

/* Round trip, loss and jitter from small probes the echo peer sends back on an
 * unreliable data channel (not from the echoed media: aiortc sends VP8 at 250 kbps or
 * more and Opus at 96 kbps, whatever the link, which would measure aiortc instead).
 * Resolves with the first phase's figures and the second's as `.audio`. */
function probeLink(channel, videoOff, onSecond) {
  var sent = [], back = [];
  var seq = 0;
  channel.onmessage = function (e) {
    var n = parseInt(e.data, 10);
    if (isNaN(n) || sent[n] == null || back[n] != null) return;
    back[n] = performance.now() - sent[n];
  };
  return new Promise(function (resolve) {
    var t0 = performance.now();
    var ping = setInterval(function () {
      if (channel.readyState !== "open") return;
      sent[seq] = performance.now();
      channel.send(String(seq));
      seq += 1;
    }, PING_MS);
    var tick = setInterval(function () {
      onSecond(figures(sent, back, t0, performance.now(), false));
    }, 1000);
    setTimeout(function () {
      var t1 = performance.now();
      videoOff();
      setTimeout(function () {
        clearInterval(ping);
        var t2 = performance.now();
        var rtt = figures(sent, back, t0, t2, false).rttMs || 0;
        // Late probes still count: wait a little for those in flight.
        setTimeout(function () {
          clearInterval(tick);
          var m = figures(sent, back, t0 + WARMUP_MS, t1, true);
          m.audio = figures(sent, back, t1 + DRAIN_MS, t2, true);
          m.connected = m.connected || m.audio.connected;
          resolve(m);
        }, Math.min(3000, Math.max(1000, 2 * rtt)));
      }, AUDIO_PHASE_MS);
    }, VIDEO_PHASE_MS);
  });
}

function median(values) {
  if (!values.length) return 0;
  var v = values.slice().sort(function (a, b) { return a - b; });
  return v[Math.floor(v.length / 2)];
}

/** Figures of the probes sent in [from, to). */
function figures(sent, back, from, to, final) {
  var rtts = [];
  var due = 0, lost = 0;
  // Probes still in flight are not lost yet (until the test ends).
  var cutoff = final ? to : Math.min(to, performance.now() - 1000);
  for (var n = 0; n < sent.length; n++) {
    if (sent[n] < from || sent[n] >= to) continue;
    if (back[n] != null) rtts.push(back[n]);
    if (sent[n] >= cutoff && back[n] == null) continue;
    due += 1;
    if (back[n] == null) lost += 1;
  }
  var m = { connected: rtts.length > 0, rttMs: null, lossPct: null, jitterMs: null };
  if (rtts.length) {
    m.rttMs = median(rtts);
    var d = 0;
    for (var i = 1; i < rtts.length; i++) d += Math.abs(rtts[i] - rtts[i - 1]);
    m.jitterMs = rtts.length > 1 ? d / (rtts.length - 1) : 0;
  }
  if (due > 0) {
    // A probe is lost if either way loses it: the one-way loss the call's rules use.
    m.lossPct = 100 * (1 - Math.sqrt(1 - lost / due));
  }
  return m;
}

async function availableKbps(pc) {
  var kbps = null;
  var report = await pc.getStats();
  report.forEach(function (s) {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" &&
        s.availableOutgoingBitrate != null) kbps = s.availableOutgoingBitrate / 1000;
  });
  return kbps;
}

async function iceConfig() {
  var servers = [];
  try {
    var response = await fetch("/api/calls/ice-servers", { credentials: "same-origin" });
    if (response.ok) servers = (await response.json()).ice_servers || [];
  } catch (e) { /* no TURN: host candidates only, as the call page would */ }
  return {
    iceServers: servers,
    iceTransportPolicy: root.dataset.icePolicy === "relay" ? "relay" : "all",
  };
}

function show(m) {
  $("r-rtt").textContent = m.rttMs == null ? "–" : Math.round(m.rttMs) + " ms";
  $("r-kbps").textContent = m.availableKbps == null ? "–" : Math.round(m.availableKbps) + " kbps";
  $("r-loss").textContent = m.lossPct == null ? "–" : m.lossPct.toFixed(1) + " %";
}

async function runTest() {
  var button = $("start-test");
  button.disabled = true;
  $("recommendation").hidden = true;
  $("test-status").textContent = S.connecting;
  var scheme = location.protocol === "https:" ? "wss:" : "ws:";
  var pc = new RTCPeerConnection(await iceConfig());
  var ws = new WebSocket(scheme + "//" + location.host + root.dataset.ws + "/echo");
  var finished = false;
  var kbps = null;
  // Our camera and microphone go up as the call starts them (link.js: low start), so the
  // probes measure a link that carries them; nothing comes back but the probes.
  var caps = { audio: TIERS.start.audioKbps, video: START_VIDEO_KBPS };
  if (stream) {
    stream.getTracks().forEach(function (tr) {
      pc.addTransceiver(tr, {
        direction: "sendonly", streams: [stream],
        sendEncodings: [{ maxBitrate: caps[tr.kind] * 1000 }],
      });
    });
  }
  var channel = pc.createDataChannel("probe", { ordered: false, maxRetransmits: 0 });
  function videoOff() {
    pc.getSenders().forEach(function (sender) {
      if (sender.track && sender.track.kind === "video") sender.replaceTrack(null);
    });
  }

  function finish(m, statusKey) {
    if (finished) return;
    finished = true;
    var result = recommend(m);
    window.dariPrecall.result = { measured: m, recommendation: result };
    if (result === "low") remember("cap", "300");
    else if (result === "video") remember("cap", "0");
    $("test-status").textContent = S[statusKey];
    var box = $("recommendation");
    box.textContent = S[result];
    box.dataset.result = result;
    box.hidden = false;
    button.disabled = false;
    button.textContent = S.again;
    pc.close();
    if (ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }

  var timeout = setTimeout(function () { finish({ connected: false }, "failed"); }, TEST_MS + 20000);
  ws.onopen = async function () {
    await pc.setLocalDescription(await pc.createOffer());
    // The echo peer (aiortc) does not trickle: send one complete description.
    await waitForGathering(pc);
    ws.send(JSON.stringify({ v: 1, type: "offer", sdp: pc.localDescription.sdp }));
  };
  ws.onmessage = async function (event) {
    var frame;
    try { frame = JSON.parse(event.data); } catch (e) { return; }
    if (frame.type !== "answer") return;
    // Opus as the call sends it (in-band FEC, DTX, 40 ms packets: call/link.js).
    await pc.setRemoteDescription({ type: "answer", sdp: tuneOpus(frame.sdp) });
    if (channel.readyState !== "open") {
      await new Promise(function (resolve) { channel.onopen = resolve; });
    }
    $("test-status").textContent = S.testing;
    var m = await probeLink(channel, videoOff, function (partial) {
      availableKbps(pc).then(function (k) { if (k != null) kbps = k; });
      partial.availableKbps = kbps;
      show(partial);
    });
    m.availableKbps = kbps;
    show(m);
    clearTimeout(timeout);
    finish(m, m.connected ? "done" : "failed");
  };
  ws.onclose = function (event) {
    if (finished) return;
    clearTimeout(timeout);
    finish({ connected: false }, event.code === 1013 ? "busy" : "failed");
  };
}

async function start() {
  if (!navigator.mediaDevices) { $("device-error").hidden = false; return; }
  $("camera").onchange = function () { remember("camera", $("camera").value); openDevices(); };
  $("microphone").onchange = function () { remember("microphone", $("microphone").value); openDevices(); };
  $("start-test").onclick = runTest;
  await openDevices();
}

if (root) start();
