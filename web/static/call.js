/* Dari call page: WebRTC with perfect negotiation over Dari's signaling (docs/signaling.md).
 * Our own code, no framework, no build step. Strings come translated from the page
 * (#call-strings), so every word on screen goes through the server's catalog. */
(function () {
  "use strict";

  var root = document.getElementById("call");
  if (!root) return;
  var S = document.getElementById("call-strings").dataset;
  var cfg = root.dataset;
  var room = cfg.room;

  function t(key, vars) {
    var text = S[key] || key;
    if (!vars) return text;
    return text.replace(/%\((\w+)\)s/g, function (_, name) {
      return vars[name] == null ? "" : String(vars[name]);
    });
  }
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }
  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }
  function postJSON(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body || {}),
    }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  // ---- Rules (pure functions; thresholds documented in docs/web.md) ----

  /** Link level shown to the user: "good", "fair" or "poor". */
  function linkLevel(s) {
    if (s.rttMs == null && s.lossPct == null) return "unknown";
    var rtt = s.rttMs || 0, loss = s.lossPct || 0;
    if (rtt < 300 && loss < 3) return "good";
    if (rtt < 800 && loss < 10) return "fair";
    return "poor";
  }

  /** True when a stats sample says the link cannot carry video. */
  function tooWeakForVideo(s) {
    return (s.lossPct != null && s.lossPct > 15) ||
      (s.rttMs != null && s.rttMs > 1500) ||
      (s.availableKbps != null && s.availableKbps < 120);
  }

  /** True when a sample says even audio is failing. */
  function tooWeakForAudio(s) {
    return (s.lossPct != null && s.lossPct > 30) || (s.rttMs != null && s.rttMs > 3000);
  }

  var WEAK_SAMPLES = 3;      // consecutive bad samples (about 9 s) before falling back
  var STATS_EVERY_MS = 3000;
  var AUTO_PAUSE_MS = 60000; // after the user turns video back on, no automatic fall-back for 1 min

  // ---- State ----

  var state = {
    ws: null,
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
    ended: false,
    stopReconnect: false,
    attempt: 0,
    lastFrameAt: 0,
    weakRun: 0,
    audioWeakRun: 0,
    samples: [],
    last: {},
    outbox: [],
    iceFailedSince: 0,
    glare: { ignored: 0, rolledBack: 0 },
  };

  // ---- Status and banner ----

  function setStatus(key, vars) {
    $("call-status").textContent = t(key, vars);
    $("call-status").dataset.state = key;
  }

  function showBanner(key, action, withWriting) {
    var banner = $("call-banner");
    $("call-banner-text").textContent = t(key);
    banner.dataset.kind = key;
    var button = $("call-banner-action");
    if (action) {
      button.textContent = t(action.label);
      button.onclick = action.run;
      button.hidden = false;
    } else {
      button.hidden = true;
      button.onclick = null;
    }
    if ($("call-banner-writing")) $("call-banner-writing").hidden = !withWriting;
    banner.hidden = false;
  }

  function hideBanner(kind) {
    var banner = $("call-banner");
    if (!kind || banner.dataset.kind === kind) banner.hidden = true;
  }

  // ---- Local media ----

  function savedDevice(kind) {
    try { return localStorage.getItem("dari." + kind) || undefined; } catch (e) { return undefined; }
  }

  async function openLocalMedia() {
    var cam = savedDevice("camera"), mic = savedDevice("microphone");
    var audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    if (mic) audio.deviceId = { ideal: mic };
    // Modest resolution and frame rate: a rural uplink carries 360p at 15 fps well.
    var video = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 15, max: 24 } };
    if (cam) video.deviceId = { ideal: cam };
    var attempts = [{ audio: audio, video: video }, { audio: audio, video: false }];
    for (var i = 0; i < attempts.length; i++) {
      try {
        return await navigator.mediaDevices.getUserMedia(attempts[i]);
      } catch (e) { /* try the next, smaller ask */ }
    }
    showBanner("mediaDenied");
    return new MediaStream();
  }

  function track(kind) {
    if (!state.local) return null;
    var list = kind === "audio" ? state.local.getAudioTracks() : state.local.getVideoTracks();
    return list[0] || null;
  }

  // ---- Signaling ----

  function wsUrl() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + cfg.ws + "/room";
  }

  function send(frame) {
    frame.v = 1;
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function connect() {
    if (state.ended || state.stopReconnect) return;
    if (state.ws && state.ws.readyState <= WebSocket.OPEN) return;
    var ws = new WebSocket(wsUrl());
    state.ws = ws;
    ws.onopen = function () {
      state.lastFrameAt = Date.now();
      ws.send(JSON.stringify({
        v: 1, type: "join", room: room, token: state.joinToken,
        resume_token: state.resumeToken, can_rollback: true,
      }));
    };
    ws.onmessage = function (event) {
      state.lastFrameAt = Date.now();
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      handleFrame(frame);
    };
    ws.onclose = function (event) {
      if (state.ws !== ws) return;
      state.ws = null;
      onSocketClosed(event.code);
    };
  }

  function onSocketClosed(code) {
    if (state.ended) return;
    if (code === 4409) {           // another tab took over: never fight it
      state.stopReconnect = true;
      setStatus("replaced");
      return;
    }
    if (code === 4403) {
      state.stopReconnect = true;
      setStatus(cfg.guest ? "refused" : "denied");
      return;
    }
    if (code === 4429) {
      state.stopReconnect = true;
      setStatus("callFull");
      return;
    }
    setStatus(navigator.onLine === false ? "offline" : "reconnecting");
    showBanner(navigator.onLine === false ? "offline" : "reconnecting");
    var delay = Math.min(5000, 500 * Math.pow(2, state.attempt++));
    setTimeout(connect, delay);
  }

  function heartbeat() {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
    var silentMs = Date.now() - state.lastFrameAt;
    // A socket whose network vanished may never report close: give up on it ourselves.
    if (silentMs > Math.max(12000, state.heartbeatS * 1000)) {
      var dead = state.ws;
      state.ws = null;
      try { dead.close(); } catch (e) { /* already closing */ }
      onSocketClosed(1006);
      return;
    }
    send({ type: "ping", ts: Date.now() });
  }

  function handleFrame(f) {
    switch (f.type) {
      case "welcome": return onWelcome(f);
      case "lobby": return setStatus("lobbyWaiting");
      case "knock": return onKnock(f.peer);
      case "peer-joined": return onPeerJoined(f.peer);
      case "peer-left": return onPeerLeft(f.peer_id);
      case "offer":
      case "answer":
        return withPeer(f.from, function (peer) { return onDescription(peer, f); });
      case "candidate":
        return withPeer(f.from, function (peer) { return onCandidate(peer, f.candidate); });
      case "end-of-candidates":
        return withPeer(f.from, function (peer) { return onCandidate(peer, null); });
      case "ice-restart": return onIceRestart(f.from);
      case "chat": return onChat(f);
      case "error": return onError(f);
      default: return undefined;
    }
  }

  function onWelcome(f) {
    var resumed = !!f.resumed && f.peer_id === state.peerId;
    state.peerId = f.peer_id;
    state.resumeToken = f.resume_token;
    state.iceServers = f.ice_servers || [];
    state.heartbeatS = f.heartbeat_s || 15;
    state.attempt = 0;
    hideBanner("reconnecting");
    hideBanner("offline");
    if (!resumed) {
      // A fresh identity: the old connections belong to a peer id that no longer exists.
      state.peers.forEach(function (peer) { closePeer(peer); });
      state.peers.clear();
      (f.peers || []).forEach(function (info) {
        var peer = addPeer(info);
        // The newcomer offers (docs/signaling.md "Who starts").
        if (peer.offer !== "peer") startConnection(peer, true);
      });
    }
    else {
      // Resumed: the others were told to restart ICE with us. Catch up on who came and
      // went while we were away (their peer-joined / peer-left frames were missed).
      var present = new Set((f.peers || []).map(function (info) { return info.peer_id; }));
      state.peers.forEach(function (peer, id) {
        if (!present.has(id)) { closePeer(peer); state.peers.delete(id); }
      });
      (f.peers || []).forEach(function (info) {
        var known = state.peers.has(info.peer_id);
        var peer = addPeer(info);
        if (!known && peer.offer !== "peer") startConnection(peer, true);
      });
    }
    while (state.outbox.length) send(state.outbox.shift());
    updateStatus();
  }

  function onError(f) {
    if (f.code === "room_full") setStatus("callFull");
    else if (window.console) console.warn("signaling error", f.code, f.message);
  }

  // ---- Peers and perfect negotiation ----

  function addPeer(info) {
    var existing = state.peers.get(info.peer_id);
    if (existing) {
      existing.polite = info.polite !== false;
      existing.offer = info.offer || "any";
      return existing;
    }
    var peer = {
      id: info.peer_id,
      name: info.name || "",
      kind: info.kind || "user",
      polite: info.polite !== false,
      offer: info.offer || "any",
      pc: null,
      makingOffer: false,
      ignoreOffer: false,
      queue: Promise.resolve(),
      tiles: new Map(),
      senders: {},
      prev: null,
      stats: {},
    };
    state.peers.set(peer.id, peer);
    return peer;
  }

  function withPeer(id, work) {
    var peer = state.peers.get(id) || addPeer({ peer_id: id });
    // One frame at a time per peer: a candidate must never overtake its description.
    peer.queue = peer.queue.then(function () { return work(peer); }).catch(function (e) {
      if (window.console) console.warn("negotiation", e);
    });
    return peer.queue;
  }

  function startConnection(peer, withTracks) {
    if (peer.pc && peer.pc.connectionState !== "closed") return peer.pc;
    var pc = new RTCPeerConnection({ iceServers: state.iceServers });
    peer.pc = pc;
    peer.senders = {};
    peer.makingOffer = false;
    peer.ignoreOffer = false;
    peer.prev = null;
    pc.onicecandidate = function (e) {
      if (e.candidate) send({ type: "candidate", to: peer.id, candidate: e.candidate.toJSON() });
      else send({ type: "end-of-candidates", to: peer.id });
    };
    pc.onnegotiationneeded = function () { negotiate(peer, pc); };
    pc.ontrack = function (e) { showRemoteTrack(peer, e.track, e.streams[0]); };
    pc.onconnectionstatechange = function () { onConnectionState(peer, pc); };
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
      if (window.console) console.warn("offer failed", e);
    } finally {
      peer.makingOffer = false;
    }
  }

  async function onDescription(peer, f) {
    var pc = peer.pc;
    if (f.type === "offer" && (!pc || pc.connectionState === "failed" || pc.connectionState === "closed")) {
      if (pc) closePeer(peer);
      pc = startConnection(peer, false);
    }
    if (!pc) return;
    var description = { type: f.type, sdp: f.sdp };
    var collision = f.type === "offer" && (peer.makingOffer || pc.signalingState !== "stable");
    peer.ignoreOffer = !peer.polite && collision;
    if (peer.ignoreOffer) { state.glare.ignored++; return; } // impolite: our offer wins
    if (collision) {
      state.glare.rolledBack++;
      // Polite side of a glare: roll our offer back, then take theirs.
      await pc.setLocalDescription({ type: "rollback" });
    }
    await pc.setRemoteDescription(description);
    if (f.type === "offer") {
      attachLocalTracks(peer);
      await pc.setLocalDescription();
      send({ type: "answer", to: peer.id, sdp: pc.localDescription.sdp });
    }
  }

  async function onCandidate(peer, candidate) {
    if (!peer.pc) return;
    try {
      await peer.pc.addIceCandidate(candidate || undefined);
    } catch (e) {
      if (!peer.ignoreOffer) throw e;
    }
  }

  function attachLocalTracks(peer) {
    var pc = peer.pc;
    var have = pc.getSenders().map(function (s) { return s.track; });
    var audio = track("audio"), video = track("video");
    if (audio && have.indexOf(audio) < 0) peer.senders.audio = pc.addTrack(audio, state.local);
    if (video && have.indexOf(video) < 0) peer.senders.video = pc.addTrack(video, state.local);
    // Without a camera or microphone we still want to see and hear the other side.
    var kinds = pc.getTransceivers().map(function (tr) { return tr.receiver.track.kind; });
    if (!audio && kinds.indexOf("audio") < 0) pc.addTransceiver("audio", { direction: "recvonly" });
    if (!video && kinds.indexOf("video") < 0) pc.addTransceiver("video", { direction: "recvonly" });
    if (state.screen && !peer.senders.screen) {
      peer.senders.screen = pc.addTrack(state.screen.getVideoTracks()[0], state.screen);
    }
    applySenderParameters(peer);
  }

  async function setEncoding(sender, change) {
    if (!sender || !sender.track) return;
    var params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) params.encodings = [{}];
    params.encodings.forEach(change);
    try {
      await sender.setParameters(params);
    } catch (e) { /* not negotiated yet: applied again after negotiation */ }
  }

  function applySenderParameters(peer) {
    var cap = state.capKbps;
    // Audio keeps priority: on a congested link the browser starves video first.
    setEncoding(peer.senders.audio, function (enc) {
      enc.priority = "high";
      enc.networkPriority = "high";
    });
    [peer.senders.video, peer.senders.screen].forEach(function (sender) {
      setEncoding(sender, function (enc) {
        if (cap > 0) enc.maxBitrate = cap * 1000; else delete enc.maxBitrate;
        enc.priority = "low";
        if (sender === peer.senders.video) enc.active = !state.audioOnly;
      });
    });
  }

  function applyAll() {
    state.peers.forEach(function (peer) { if (peer.pc) applySenderParameters(peer); });
  }

  function onConnectionState(peer, pc) {
    if (peer.pc !== pc) return;
    var s = pc.connectionState;
    if (s === "connected") {
      state.iceFailedSince = 0;
      hideBanner("iceRestart");
      applySenderParameters(peer);
    } else if (s === "failed") {
      // The media path broke (network change): restart ICE ourselves.
      if (!state.iceFailedSince) state.iceFailedSince = Date.now();
      restartIce(peer);
    } else if (s === "disconnected") {
      setTimeout(function () {
        if (peer.pc === pc && pc.connectionState === "disconnected") restartIce(peer);
      }, 4000);
    }
    updateStatus();
  }

  function restartIce(peer) {
    if (!peer.pc) return;
    showBanner("iceRestart");
    if (peer.offer === "peer") {
      send({ type: "ice-restart", to: peer.id });
    } else {
      peer.pc.restartIce();
    }
  }

  function onIceRestart(from) {
    var peer = state.peers.get(from);
    if (!peer) return;
    if (!peer.pc || peer.pc.connectionState === "closed") {
      startConnection(peer, true);
      return;
    }
    peer.pc.restartIce();
  }

  function onPeerJoined(info) {
    var peer = addPeer(info);
    removeKnock(info.peer_id);
    // The newcomer offers; we only prepare for it unless we are the sole offerer.
    if (peer.offer === "you") startConnection(peer, true);
    setStatus("peerJoined", { name: peer.name });
  }

  function onPeerLeft(id) {
    var peer = state.peers.get(id);
    if (!peer) return;
    closePeer(peer);
    state.peers.delete(id);
    removeKnock(id);
    setStatus("peerLeft", { name: peer.name });
    updateEmpty();
  }

  function closePeer(peer) {
    if (peer.pc) {
      peer.pc.onnegotiationneeded = null;
      peer.pc.onconnectionstatechange = null;
      peer.pc.close();
    }
    peer.pc = null;
    peer.tiles.forEach(function (tile) { tile.remove(); });
    peer.tiles.clear();
    updateEmpty();
  }

  function updateStatus() {
    if (state.ended) return;
    var connected = 0, total = 0;
    state.peers.forEach(function (peer) {
      if (peer.kind === "guest" && !peer.pc) return;
      total++;
      if (peer.pc && peer.pc.connectionState === "connected") connected++;
    });
    if (!state.ws) return;
    if (total === 0) setStatus("waiting");
    else if (connected > 0) setStatus("connected");
    else setStatus("connecting");
  }

  // ---- Remote video tiles ----

  function showRemoteTrack(peer, mediaTrack, stream) {
    var key = stream ? stream.id : mediaTrack.id;
    var tile = peer.tiles.get(key);
    if (!tile) {
      var isScreen = peer.tiles.size > 0;
      tile = el("figure", "remote-tile" + (isScreen ? " screen" : ""));
      var video = el("video");
      video.autoplay = true;
      video.playsInline = true;
      var caption = el("figcaption", null, isScreen ? peer.name + " · " + t("screen") : peer.name);
      var badge = el("span", "tile-badge", t("remoteAudioOnly"));
      badge.hidden = true;
      tile.appendChild(video);
      tile.appendChild(caption);
      tile.appendChild(badge);
      tile.dataset.peer = peer.id;
      $("remote-tiles").appendChild(tile);
      peer.tiles.set(key, tile);
      video.srcObject = stream || new MediaStream([mediaTrack]);
      if (stream) {
        stream.onremovetrack = function () {
          if (!stream.getTracks().length) { tile.remove(); peer.tiles.delete(key); updateEmpty(); }
        };
      }
    }
    if (mediaTrack.kind === "video") {
      var badgeEl = tile.querySelector(".tile-badge");
      // No video packets for a while (the other side paused video): say so on the tile.
      mediaTrack.onmute = function () { badgeEl.hidden = false; tile.classList.add("audio-only"); };
      mediaTrack.onunmute = function () { badgeEl.hidden = true; tile.classList.remove("audio-only"); };
    }
    updateEmpty();
  }

  function updateEmpty() {
    $("stage-empty").hidden = $("remote-tiles").querySelector(".remote-tile") !== null;
  }

  // ---- Controls ----

  function setPressed(button, pressed, key) {
    button.setAttribute("aria-pressed", pressed ? "true" : "false");
    button.textContent = t(key);
  }

  function toggleMic() {
    var audio = track("audio");
    state.micOn = !state.micOn;
    if (audio) audio.enabled = state.micOn;
    setPressed($("btn-mic"), !state.micOn, state.micOn ? "mute" : "unmute");
  }

  function toggleCamera() {
    var video = track("video");
    state.camOn = !state.camOn;
    if (video) video.enabled = state.camOn;
    setPressed($("btn-camera"), !state.camOn, state.camOn ? "cameraOff" : "cameraOn");
  }

  function setAudioOnly(on, automatic) {
    state.audioOnly = on;
    state.audioOnlyAuto = on && !!automatic;
    state.weakRun = 0;
    setPressed($("btn-audio-only"), on, on ? "videoOn" : "audioOnly");
    root.classList.toggle("is-audio-only", on);
    applyAll();
    if (on) {
      showBanner(automatic ? "audioOnlyAuto" : "audioOnlyManual", {
        label: "videoBack",
        run: function () { setAudioOnly(false); },
      });
    } else {
      state.autoPausedUntil = Date.now() + AUTO_PAUSE_MS;
      hideBanner("audioOnlyAuto");
      hideBanner("audioOnlyManual");
    }
  }

  async function toggleScreen() {
    if (state.screen) return stopScreen();
    var stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 5 }, audio: false });
    } catch (e) {
      return undefined; // the user cancelled the picker
    }
    state.screen = stream;
    var screenTrack = stream.getVideoTracks()[0];
    screenTrack.contentHint = "detail"; // an X-ray must stay sharp; frame rate may drop
    screenTrack.onended = stopScreen;
    // A new track means renegotiation; perfect negotiation keeps either side free to do it.
    state.peers.forEach(function (peer) {
      if (peer.pc) peer.senders.screen = peer.pc.addTrack(screenTrack, stream);
      if (peer.pc) applySenderParameters(peer);
    });
    setPressed($("btn-screen"), true, "stopShare");
    return undefined;
  }

  function stopScreen() {
    if (!state.screen) return;
    state.screen.getTracks().forEach(function (tr) { tr.stop(); });
    state.screen = null;
    state.peers.forEach(function (peer) {
      if (peer.pc && peer.senders.screen) {
        try { peer.pc.removeTrack(peer.senders.screen); } catch (e) { /* pc closed */ }
      }
      peer.senders.screen = null;
    });
    setPressed($("btn-screen"), false, "shareScreen");
  }

  function hangUp() {
    state.ended = true;
    send({ type: "leave" });
    if (state.ws) state.ws.close(1000);
    state.peers.forEach(closePeer);
    state.peers.clear();
    if (state.local) state.local.getTracks().forEach(function (tr) { tr.stop(); });
    stopScreen();
    setStatus("ended");
    if (cfg.consultUrl) location.href = cfg.consultUrl;
  }

  /** One click from a failing call to the written thread: same consult, nothing retyped. */
  async function continueInWriting(event) {
    event.preventDefault();
    var target = cfg.threadUrl;
    if (cfg.switchUrl) {
      var form = new URLSearchParams({ mode: "async", reason: t("writingReason") });
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
    state.ended = true;
    send({ type: "leave" });
    location.href = target;
  }

  /** Hours and minutes in the user's language and zone (the clinic's clock, from the page). */
  function clock(date) {
    var options = { hour: "2-digit", minute: "2-digit" };
    if (cfg.timezone) options.timeZone = cfg.timezone;
    try {
      return date.toLocaleTimeString(document.documentElement.lang || undefined, options);
    } catch (e) {
      return date.toLocaleTimeString();
    }
  }

  // ---- Chat ----

  function appendChat(name, text, at, mine) {
    var item = el("li", mine ? "mine" : null);
    var when = at ? new Date(at) : new Date();
    var head = el("span", "chat-head", name + " · " + clock(when));
    item.appendChild(head);
    item.appendChild(el("span", "chat-text", text));
    var log = $("chat-log");
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  function onChat(f) {
    if (f.from && f.from === state.peerId) return; // our own, already shown
    appendChat(f.name || "", f.text, f.at, false);
  }

  function sendChat(event) {
    event.preventDefault();
    var input = $("chat-input");
    var text = input.value.trim();
    if (!text) return;
    var frame = { type: "chat", text: text.slice(0, 2000) };
    if (!send(frame)) state.outbox.push(frame); // sent after the reconnect
    appendChat(t("you"), text, null, true);
    input.value = "";
  }

  // ---- Guests and lobby ----

  function onKnock(info) {
    var list = $("lobby");
    if (!list || !info || list.querySelector('[data-peer="' + info.peer_id + '"]')) return;
    var item = el("li");
    item.dataset.peer = info.peer_id;
    item.appendChild(el("span", null, t("guestWaiting", { name: info.name })));
    var admit = el("button", "primary", t("admit"));
    admit.type = "button";
    admit.onclick = function () { send({ type: "admit", peer: info.peer_id }); item.remove(); };
    var deny = el("button", null, t("refuse"));
    deny.type = "button";
    deny.onclick = function () { send({ type: "deny", peer: info.peer_id }); item.remove(); };
    item.appendChild(admit);
    item.appendChild(deny);
    list.appendChild(item);
  }

  function removeKnock(id) {
    var list = $("lobby");
    var item = list && list.querySelector('[data-peer="' + id + '"]');
    if (item) item.remove();
  }

  async function invite() {
    var nameInput = $("guest-name");
    var name = (nameInput && nameInput.value.trim()) || nameInput.placeholder;
    try {
      var made = await postJSON("/api/consults/" + encodeURIComponent(room) + "/invitations", { guest_name: name });
      var url = new URL(made.url, location.href).href;
      var until = clock(new Date(made.expires_at));
      $("invite-text").textContent = t("inviteCreated", { time: until });
      $("invite-link").value = url;
    } catch (e) {
      $("invite-text").textContent = t("inviteFailed");
      $("invite-link").value = "";
    }
    $("invite-result").hidden = false;
  }

  function copyInvite() {
    var input = $("invite-link");
    input.select();
    if (navigator.clipboard) navigator.clipboard.writeText(input.value).catch(function () {});
    $("invite-copy").textContent = t("copied");
  }

  // ---- Link quality ----

  async function samplePeer(peer, now) {
    var report = await peer.pc.getStats();
    var cur = { t: now, inBytes: 0, outBytes: 0, lost: 0, recv: 0, frames: 0, rtt: null, avail: null, remoteLoss: null };
    var pairId = null;
    report.forEach(function (s) {
      if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    report.forEach(function (s) {
      if (s.type === "inbound-rtp") {
        cur.inBytes += s.bytesReceived || 0;
        cur.lost += Math.max(0, s.packetsLost || 0);
        cur.recv += s.packetsReceived || 0;
        if (s.kind === "video") cur.frames += s.framesDecoded || 0;
      } else if (s.type === "outbound-rtp") {
        cur.outBytes += s.bytesSent || 0;
      } else if (s.type === "remote-inbound-rtp" && s.fractionLost != null) {
        cur.remoteLoss = Math.max(cur.remoteLoss || 0, s.fractionLost * 100);
      } else if (s.type === "candidate-pair" && (s.id === pairId || (!pairId && s.nominated && s.state === "succeeded"))) {
        if (s.currentRoundTripTime != null) cur.rtt = s.currentRoundTripTime * 1000;
        if (s.availableOutgoingBitrate != null) cur.avail = s.availableOutgoingBitrate / 1000;
      }
    });
    var prev = peer.prev;
    peer.prev = cur;
    var out = { framesDecoded: cur.frames, rttMs: cur.rtt, availableKbps: cur.avail };
    if (prev) {
      var dt = (cur.t - prev.t) / 1000;
      var lost = cur.lost - prev.lost, recv = cur.recv - prev.recv;
      out.kbpsIn = Math.max(0, (cur.inBytes - prev.inBytes) * 8 / dt / 1000);
      out.kbpsOut = Math.max(0, (cur.outBytes - prev.outBytes) * 8 / dt / 1000);
      var inLoss = lost + recv > 0 ? 100 * lost / (lost + recv) : 0;
      out.lossPct = Math.max(inLoss, cur.remoteLoss || 0);
    }
    peer.stats = out;
    return out;
  }

  function fmt(n, unit, digits) {
    return n == null ? "–" : n.toFixed(digits || 0) + " " + unit;
  }

  async function sampleStats() {
    var now = Date.now();
    var worst = null;
    var peers = [];
    state.peers.forEach(function (p) { if (p.pc && p.pc.connectionState === "connected") peers.push(p); });
    for (var i = 0; i < peers.length; i++) {
      try {
        var s = await samplePeer(peers[i], now);
        if (!worst || (s.lossPct || 0) + (s.rttMs || 0) / 100 > (worst.lossPct || 0) + (worst.rttMs || 0) / 100) worst = s;
      } catch (e) { /* closed meanwhile */ }
    }
    if (!worst) return;
    state.last = worst;
    var level = linkLevel(worst);
    $("quality").dataset.level = level;
    $("quality-label").textContent = t("quality" + level.charAt(0).toUpperCase() + level.slice(1));
    $("q-rtt").textContent = fmt(worst.rttMs, "ms");
    $("q-loss").textContent = fmt(worst.lossPct, "%", 1);
    $("q-out").textContent = fmt(worst.kbpsOut, "kbps");
    $("q-in").textContent = fmt(worst.kbpsIn, "kbps");
    if (worst.kbpsIn != null) {
      state.samples.push({ kbps: worst.kbpsIn + (worst.kbpsOut || 0), rtt: worst.rttMs, loss: worst.lossPct });
      if (state.samples.length > 200) state.samples.shift();
    }
    adapt(worst);
  }

  function adapt(s) {
    state.weakRun = tooWeakForVideo(s) ? state.weakRun + 1 : 0;
    state.audioWeakRun = tooWeakForAudio(s) ? state.audioWeakRun + 1 : 0;
    if (!state.audioOnly && state.weakRun >= WEAK_SAMPLES && Date.now() > state.autoPausedUntil) {
      setAudioOnly(true, true);
    }
    if (state.audioWeakRun >= WEAK_SAMPLES) showBanner("audioFailing", null, true);
    else hideBanner("audioFailing");
  }

  function median(values) {
    var v = values.filter(function (x) { return x != null; }).sort(function (a, b) { return a - b; });
    return v.length ? v[Math.floor(v.length / 2)] : 0;
  }

  function reportQuality() {
    if (!state.samples.length) return;
    send({
      type: "stats",
      bitrate_kbps: median(state.samples.map(function (s) { return s.kbps; })),
      rtt_ms: median(state.samples.map(function (s) { return s.rtt; })),
      loss_pct: median(state.samples.map(function (s) { return s.loss; })),
    });
  }

  // ---- Start ----

  async function redeemGuest() {
    // The invitation travels in the URL fragment (never in server logs); spend it once.
    var token = location.hash.slice(1);
    history.replaceState(null, "", location.pathname);
    var made = await postJSON("/api/invitations/redeem", { token: token });
    state.joinToken = made.join_token;
    room = made.room || room;
  }

  async function start() {
    $("btn-mic").onclick = toggleMic;
    $("btn-camera").onclick = toggleCamera;
    $("btn-screen").onclick = toggleScreen;
    $("btn-audio-only").onclick = function () { setAudioOnly(!state.audioOnly, false); };
    $("btn-hangup").onclick = hangUp;
    $("chat-form").onsubmit = sendChat;
    ["btn-writing", "call-banner-writing"].forEach(function (id) {
      if ($(id)) $(id).onclick = continueInWriting;
    });
    $("bandwidth").onchange = function () {
      state.capKbps = parseInt($("bandwidth").value, 10) || 0;
      applyAll();
    };
    var savedCap = savedDevice("cap");  // set by the pre-call check's recommendation
    if (savedCap && $("bandwidth").querySelector('option[value="' + savedCap + '"]')) {
      $("bandwidth").value = savedCap;
      state.capKbps = parseInt(savedCap, 10) || 0;
    }
    if ($("invite")) $("invite").onclick = invite;
    if ($("invite-copy")) $("invite-copy").onclick = copyInvite;
    if (!navigator.mediaDevices || !window.RTCPeerConnection) {
      showBanner("mediaDenied", null, true);
    }
    state.local = navigator.mediaDevices ? await openLocalMedia() : new MediaStream();
    $("local-video").srcObject = state.local;
    if (cfg.guest) {
      try { await redeemGuest(); } catch (e) { setStatus("refused"); return; }
    }
    window.addEventListener("offline", function () { showBanner("offline"); setStatus("offline"); });
    window.addEventListener("online", function () {
      hideBanner("offline");
      if (!state.ws) { state.attempt = 0; connect(); }
    });
    window.addEventListener("pagehide", function () { if (!state.ended) send({ type: "leave" }); });
    setInterval(heartbeat, 5000);
    setInterval(function () { sampleStats(); }, STATS_EVERY_MS);
    setInterval(reportQuality, 15000);
    connect();
  }

  // For tests and for curious engineers: read-only views and a few handles.
  window.dariCall = {
    state: state,
    rules: { linkLevel: linkLevel, tooWeakForVideo: tooWeakForVideo, tooWeakForAudio: tooWeakForAudio },
    setAudioOnly: setAudioOnly,
    dropSignaling: function () { if (state.ws) state.ws.close(4000); },
    inboundVideoFrames: async function () {
      var total = 0;
      var peers = Array.from(state.peers.values()).filter(function (p) { return p.pc; });
      for (var i = 0; i < peers.length; i++) {
        var report = await peers[i].pc.getStats();
        report.forEach(function (s) {
          if (s.type === "inbound-rtp" && s.kind === "video") total += s.framesDecoded || 0;
        });
      }
      return total;
    },
    connectionStates: function () {
      return Array.from(state.peers.values()).map(function (p) { return p.pc ? p.pc.connectionState : "none"; });
    },
    sampleStats: sampleStats,
    adapt: adapt,
    senderParameters: function () {
      var peer = Array.from(state.peers.values()).filter(function (p) { return p.pc; })[0];
      if (!peer) return null;
      var out = {};
      ["audio", "video"].forEach(function (kind) {
        var sender = peer.senders[kind];
        out[kind] = sender ? sender.getParameters().encodings[0] || {} : null;
      });
      return out;
    },
  };

  start();
})();
