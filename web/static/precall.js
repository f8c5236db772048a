/* Dari pre-call check: device preview and a loopback test against the server's echo peer
 * (docs/signaling.md "Echo peer"). Thresholds of the recommendation: docs/web.md. */
(function () {
  "use strict";

  /**
   * The plain recommendation from a link test (pure: tested on its own).
   * m = {connected, rttMs, lossPct, kbps}; kbps is what the link carried or estimated.
   * Returns "video" | "low" (low-bandwidth video) | "audio" | "written".
   */
  function recommend(m) {
    if (!m || !m.connected) return "written";
    var rtt = m.rttMs == null ? 0 : m.rttMs;
    var loss = m.lossPct == null ? 0 : m.lossPct;
    var kbps = m.kbps == null ? 0 : m.kbps;
    if (loss > 20 || rtt > 1500 || kbps < 30) return "written";
    if (loss > 8 || rtt > 700 || kbps < 100) return "audio";
    if (loss > 3 || rtt > 300 || kbps < 250) return "low";
    return "video";
  }

  window.dariPrecall = { recommend: recommend, result: null };

  var root = document.getElementById("precall");
  if (!root) return;
  var S = document.getElementById("precall-strings").dataset;
  function $(id) { return document.getElementById(id); }
  var TEST_MS = 10000;
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
      var timer = setTimeout(resolve, 3000); // a slow STUN server must not stall the test
      pc.addEventListener("icegatheringstatechange", function () {
        if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  async function measure(pc, ms) {
    var first = null, last = null, rtts = [], avail = [];
    var until = Date.now() + ms;
    while (Date.now() < until) {
      await new Promise(function (r) { setTimeout(r, 1000); });
      var report = await pc.getStats();
      var cur = { t: Date.now(), bytes: 0, lost: 0, recv: 0, remoteLoss: 0 };
      report.forEach(function (s) {
        if (s.type === "inbound-rtp") {
          cur.bytes += s.bytesReceived || 0;
          cur.lost += Math.max(0, s.packetsLost || 0);
          cur.recv += s.packetsReceived || 0;
        } else if (s.type === "remote-inbound-rtp" && s.fractionLost != null) {
          cur.remoteLoss = Math.max(cur.remoteLoss, s.fractionLost * 100);
        } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          if (s.currentRoundTripTime != null) rtts.push(s.currentRoundTripTime * 1000);
          if (s.availableOutgoingBitrate != null) avail.push(s.availableOutgoingBitrate / 1000);
        }
      });
      if (!first && cur.bytes > 0) first = cur;
      last = cur;
      show(partial(first, last, rtts, avail));
    }
    return partial(first, last, rtts, avail);
  }

  function partial(first, last, rtts, avail) {
    var m = { connected: !!(first && last), rttMs: null, lossPct: null, kbps: null };
    if (rtts.length) m.rttMs = rtts.slice().sort(function (a, b) { return a - b; })[Math.floor(rtts.length / 2)];
    if (first && last && last.t > first.t) {
      var received = (last.bytes - first.bytes) * 8 / ((last.t - first.t) / 1000) / 1000;
      // What came back, or what the browser estimates the uplink could carry, whichever is more.
      m.kbps = Math.max(received, avail.length ? avail[avail.length - 1] : 0);
      var lost = last.lost - first.lost, recv = last.recv - first.recv;
      m.lossPct = Math.max(lost + recv > 0 ? 100 * lost / (lost + recv) : 0, last.remoteLoss);
    }
    return m;
  }

  function show(m) {
    $("r-rtt").textContent = m.rttMs == null ? "–" : Math.round(m.rttMs) + " ms";
    $("r-kbps").textContent = m.kbps == null ? "–" : Math.round(m.kbps) + " kbps";
    $("r-loss").textContent = m.lossPct == null ? "–" : m.lossPct.toFixed(1) + " %";
  }

  function runTest() {
    var button = $("start-test");
    button.disabled = true;
    $("recommendation").hidden = true;
    $("test-status").textContent = S.connecting;
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var ws = new WebSocket(scheme + "//" + location.host + root.dataset.ws + "/echo");
    var pc = new RTCPeerConnection({ iceServers: [] });
    var finished = false;
    pc.ontrack = function (e) { $("echo").srcObject = e.streams[0] || new MediaStream([e.track]); };
    if (stream) stream.getTracks().forEach(function (tr) { pc.addTrack(tr, stream); });
    else { pc.addTransceiver("audio"); pc.addTransceiver("video"); }

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

    var timeout = setTimeout(function () { finish({ connected: false }, "failed"); }, TEST_MS + 15000);
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
      await pc.setRemoteDescription({ type: "answer", sdp: frame.sdp });
      $("test-status").textContent = S.testing;
      var m = await measure(pc, TEST_MS);
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

  start();
})();
