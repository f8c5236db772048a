async () => {
  const c = window.dariCall;
  if (!c) return null;
  const el = (id) => document.getElementById(id);
  const shown = (id) => !!el(id) && !el(id).hidden;
  const out = {
    t: Date.now(), states: [], audioOnly: !!c.state.audioOnly, audioOnlyAuto: !!c.state.audioOnlyAuto,
    asamples: 0, aconcealed: 0, apackets: 0, jitter: null, vframes: 0, vpackets: 0, fps: null,
    freezes: 0, freezeS: 0, rtt: null, local: null, remote: null, vsentBytes: 0, asentBytes: 0,
    width: null,
    banner: shown("call-banner") ? el("call-banner-text").textContent : "",
    writing: shown("call-banner-writing"),
    error: shown("call-error") ? el("call-error").textContent : "",
    status: el("call-status") ? el("call-status").textContent : "",
    chat: el("chat-log") ? el("chat-log").children.length : 0,
    last: c.state.last || null,
    tier: c.state.link ? c.state.link.tier : null,
  };
  for (const peer of c.state.peers.values()) {
    if (!peer.pc) continue;
    out.states.push(peer.pc.connectionState);
    const r = await peer.pc.getStats();
    let pair = null;
    r.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pair = s.selectedCandidatePairId; });
    r.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.asamples += s.totalSamplesReceived || 0;
        out.aconcealed += s.concealedSamples || 0;
        out.apackets += s.packetsReceived || 0;
        if (s.jitter != null) out.jitter = s.jitter * 1000;
      } else if (s.type === "inbound-rtp" && s.kind === "video") {
        out.vframes += s.framesDecoded || 0;
        out.vpackets += s.packetsReceived || 0;
        out.freezes += s.freezeCount || 0;
        out.freezeS += s.totalFreezesDuration || 0;
        if (s.framesPerSecond != null) out.fps = s.framesPerSecond;
        if (s.frameWidth) out.width = s.frameWidth;
      } else if (s.type === "outbound-rtp" && s.kind === "video") {
        out.vsentBytes += s.bytesSent || 0;
      } else if (s.type === "outbound-rtp" && s.kind === "audio") {
        out.asentBytes += s.bytesSent || 0;
      } else if (s.type === "candidate-pair" && s.id === pair) {
        if (s.currentRoundTripTime != null) out.rtt = s.currentRoundTripTime * 1000;
        const l = r.get(s.localCandidateId);
        const rm = r.get(s.remoteCandidateId);
        out.local = l ? l.candidateType : null;
        out.remote = rm ? rm.candidateType : null;
      }
    });
  }
  return out;
}
