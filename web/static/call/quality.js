/* Link quality from getStats(): figures on screen, automatic audio only, the "continue in
 * writing" offer when even audio fails, and the medians reported to the server. */

import { $ } from "../lib/page.js";
import {
  MEDIA_LOST_OFFER_MS, VIDEO_BACK_MAX_MS, VIDEO_BACK_SAMPLES, cleanForVideo, nextTier, tierOf,
} from "./link.js";
import { applyAll, setAudioOnly } from "./media.js";
import { WEAK_SAMPLES, linkLevel, median, tooWeakForAudio, tooWeakForVideo } from "./rules.js";
import { send, state, t, timers } from "./state.js";
import { hideBanner, showBanner } from "./ui.js";

async function samplePeer(peer, now) {
  const report = await peer.pc.getStats();
  const cur = { t: now, inBytes: 0, outBytes: 0, lost: 0, recv: 0, frames: 0, rtt: null, avail: null, remoteLoss: null };
  let pairId = null;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  report.forEach((s) => {
    if (s.type === "inbound-rtp") {
      cur.inBytes += s.bytesReceived || 0;
      cur.lost += Math.max(0, s.packetsLost || 0);
      cur.recv += s.packetsReceived || 0;
      if (s.kind === "video") cur.frames += s.framesDecoded || 0;
    } else if (s.type === "outbound-rtp") {
      cur.outBytes += s.bytesSent || 0;
    } else if (s.type === "remote-inbound-rtp" && s.fractionLost != null && !(state.audioOnly && s.kind === "video")) {
      // (A paused video sender keeps its last report: stale loss, not the link's.)
      cur.remoteLoss = Math.max(cur.remoteLoss || 0, s.fractionLost * 100);
    } else if (s.type === "candidate-pair" && (s.id === pairId || (!pairId && s.nominated && s.state === "succeeded"))) {
      if (s.currentRoundTripTime != null) cur.rtt = s.currentRoundTripTime * 1000;
      if (s.availableOutgoingBitrate != null) cur.avail = s.availableOutgoingBitrate / 1000;
    }
  });
  const prev = peer.prev;
  peer.prev = cur;
  const out = { framesDecoded: cur.frames, rttMs: cur.rtt, availableKbps: cur.avail };
  if (prev) {
    const dt = (cur.t - prev.t) / 1000;
    const lost = cur.lost - prev.lost;
    const recv = cur.recv - prev.recv;
    out.kbpsIn = Math.max(0, ((cur.inBytes - prev.inBytes) * 8) / dt / 1000);
    out.kbpsOut = Math.max(0, ((cur.outBytes - prev.outBytes) * 8) / dt / 1000);
    const inLoss = lost + recv > 0 ? (100 * lost) / (lost + recv) : 0;
    out.lossPct = Math.max(inLoss, cur.remoteLoss || 0);
  }
  peer.stats = out;
  return out;
}

function fmt(n, unit, digits) {
  return n == null ? "–" : n.toFixed(digits || 0) + " " + unit;
}

function badness(s) {
  return (s.lossPct || 0) + (s.rttMs || 0) / 100;
}

/** Sample every connected peer; the worst one is shown and drives the adaptation. */
export async function sampleStats() {
  if (state.ended) return;
  const now = Date.now();
  watchMediaLost(now);
  let worst = null;
  const peers = Array.from(state.peers.values()).filter((p) => p.pc && p.pc.connectionState === "connected");
  for (const peer of peers) {
    try {
      const s = await samplePeer(peer, now);
      if (!worst || badness(s) > badness(worst)) worst = s;
    } catch (e) { /* closed meanwhile */ }
  }
  if (!worst || state.ended) return;
  state.last = worst;
  const level = linkLevel(worst);
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

/** One sample's consequences: audio only after WEAK_SAMPLES weak ones, the written
 * consult offered after as many with failing audio. */
export function adapt(s) {
  const next = nextTier(state.link, s);
  state.link.upRun = next.upRun;
  state.link.downRun = next.downRun;
  if (next.tier !== state.link.tier) {
    state.link.tier = next.tier;
    applyAll();
  }
  videoBack(s);
  // A sample that reads as an edge link (link.js) counts as too weak for video as well
  // (the sample, not the sticky tier: two noisy samples must not turn a clean third one weak).
  const settling = Date.now() < (state.link.settleUntil || 0);
  const weak = !settling && (tooWeakForVideo(s) || tierOf(s) === "edge");
  state.weakRun = weak ? state.weakRun + 1 : 0;
  // "Even audio fails" once video can no longer go (it is off, or the user keeps it on):
  // before that, video is what fills the link and audio only comes first.
  const videoSettled = state.audioOnly || Date.now() < state.autoPausedUntil;
  state.audioWeakRun = videoSettled && tooWeakForAudio(s) ? state.audioWeakRun + 1 : 0;
  if (!state.audioOnly && state.weakRun >= WEAK_SAMPLES && Date.now() > state.autoPausedUntil) {
    // Fell back again after an automatic return: wait longer before the next try.
    if (state.link.cameBack) state.link.backoffMs = Math.min(2 * state.link.backoffMs, VIDEO_BACK_MAX_MS);
    setAudioOnly(true, true);
  }
  if (state.audioWeakRun >= WEAK_SAMPLES) showBanner("audioFailing", null, true);
  else hideBanner("audioFailing");
}

/** After an automatic fall-back, video comes back by itself on a clean link. */
function videoBack(s) {
  if (!state.audioOnly || !state.audioOnlyAuto) return;
  state.link.cleanRun = cleanForVideo(s) ? state.link.cleanRun + 1 : 0;
  if (state.link.cleanRun < VIDEO_BACK_SAMPLES) return;
  if (Date.now() - state.link.audioOnlySince < state.link.backoffMs) return;
  state.link.cameBack = true;
  setAudioOnly(false, true);
  showBanner("videoBackAuto");
  timers.after(6000, () => hideBanner("videoBackAuto"));
}

/** Media cut for a while (the peer connection not connected, signaling or not): offer
 * the written consult; ICE restarts meanwhile (negotiation.js). */
function watchMediaLost(now) {
  const peers = Array.from(state.peers.values()).filter((p) => p.pc);
  // Not connected, once it was: disconnected, failed, or checking again after an ICE restart.
  const down = peers.some((p) => p.everConnected && p.pc.connectionState !== "connected");
  if (!down) {
    if (state.link.downSince) hideBanner("mediaLost");
    state.link.downSince = 0;
    return;
  }
  if (!state.link.downSince) state.link.downSince = now;
  if (now - state.link.downSince >= MEDIA_LOST_OFFER_MS) showBanner("mediaLost", null, true);
}

/** The medians so far, for the call session's quality summary (last one wins). */
export function reportQuality() {
  if (!state.samples.length) return;
  send({
    type: "stats",
    bitrate_kbps: median(state.samples.map((s) => s.kbps)),
    rtt_ms: median(state.samples.map((s) => s.rtt)),
    loss_pct: median(state.samples.map((s) => s.loss)),
  });
}
