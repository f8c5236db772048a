/* Link quality from getStats(): figures shown, automatic audio only, medians reported. */

import { $ } from "../lib/page.js";
import {
  MEDIA_LOST_OFFER_MS, VIDEO_BACK_MAX_MS, VIDEO_BACK_SAMPLES, cleanForVideo, nextTier, tierOf,
} from "./link.js";
import { applyAll, setAudioOnly } from "./media.js";
import { WEAK_SAMPLES, linkLevel, median, tooWeakForAudio, tooWeakForVideo } from "./rules.js";
import { peerList, send, state, t, timers } from "./state.js";
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
    const kbps = (bytes) => Math.max(0, (bytes * 8) / dt / 1000);
    out.kbpsIn = kbps(cur.inBytes - prev.inBytes);
    out.kbpsOut = kbps(cur.outBytes - prev.outBytes);
    const inLoss = lost + recv > 0 ? (100 * lost) / (lost + recv) : 0;
    out.lossPct = Math.max(inLoss, cur.remoteLoss || 0);
  }
  return out;
}

const fmt = (n, unit, digits) => (n == null ? "–" : n.toFixed(digits || 0) + " " + unit);

const badness = (s) => (s.lossPct || 0) + (s.rttMs || 0) / 100;

/** Sample every connected peer; the worst one is shown and drives the adaptation. */
export async function sampleStats() {
  if (state.ended) return;
  const now = Date.now();
  watchMediaLost(now);
  let worst = null;
  for (const peer of peerList().filter((p) => p.pc && p.pc.connectionState === "connected")) {
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
  [["q-rtt", worst.rttMs, "ms"], ["q-loss", worst.lossPct, "%", 1], ["q-out", worst.kbpsOut, "kbps"],
    ["q-in", worst.kbpsIn, "kbps"]].forEach(([id, n, unit, digits]) => ($(id).textContent = fmt(n, unit, digits)));
  if (worst.kbpsIn != null) {
    state.samples.push({ kbps: worst.kbpsIn + (worst.kbpsOut || 0), rtt: worst.rttMs, loss: worst.lossPct });
    if (state.samples.length > 200) state.samples.shift();
  }
  adapt(worst);
}

export function adapt(s) {
  const link = state.link;
  const next = nextTier(link, s);
  link.upRun = next.upRun;
  link.downRun = next.downRun;
  if (next.tier !== link.tier) {
    link.tier = next.tier;
    applyAll();
  }
  videoBack(s);
  // the sample, not the sticky tier: two noisy samples must not turn a clean third one weak
  const now = Date.now();
  const weak = now >= (link.settleUntil || 0) && (tooWeakForVideo(s) || tierOf(s) === "edge");
  state.weakRun = weak ? state.weakRun + 1 : 0;
  // "Even audio fails" only once video can no longer go (off, or kept on by the user).
  const videoSettled = state.audioOnly || now < state.autoPausedUntil;
  state.audioWeakRun = videoSettled && tooWeakForAudio(s) ? state.audioWeakRun + 1 : 0;
  if (!state.audioOnly && state.weakRun >= WEAK_SAMPLES && now > state.autoPausedUntil) {
    // fell back again after an automatic return: wait longer
    if (link.cameBack) link.backoffMs = Math.min(2 * link.backoffMs, VIDEO_BACK_MAX_MS);
    setAudioOnly(true, true);
  }
  if (state.audioWeakRun >= WEAK_SAMPLES) showBanner("audioFailing", null, true);
  else hideBanner("audioFailing");
}

/** After an automatic fall-back, video comes back by itself on a clean link. */
function videoBack(s) {
  const link = state.link;
  if (!state.audioOnly || !state.audioOnlyAuto) return;
  link.cleanRun = cleanForVideo(s) ? link.cleanRun + 1 : 0;
  if (link.cleanRun < VIDEO_BACK_SAMPLES || Date.now() - link.audioOnlySince < link.backoffMs) return;
  link.cameBack = true;
  setAudioOnly(false, true);
  showBanner("videoBackAuto");
  timers.after(6000, () => hideBanner("videoBackAuto"));
}

/** Media cut for a while (ICE restarts meanwhile): offer the written consult. */
function watchMediaLost(now) {
  const link = state.link;
  const down = peerList().some((p) => p.pc && p.everConnected && p.pc.connectionState !== "connected");
  if (!down) {
    if (link.downSince) hideBanner("mediaLost");
    link.downSince = 0;
    return;
  }
  if (!link.downSince) link.downSince = now;
  if (now - link.downSince >= MEDIA_LOST_OFFER_MS) showBanner("mediaLost", null, true);
}

/** The medians so far, for the call session's quality summary (last one wins). */
export function reportQuality() {
  if (!state.samples.length) return;
  const of = (key) => median(state.samples.map((s) => s[key]));
  send({ type: "stats", bitrate_kbps: of("kbps"), rtt_ms: of("rtt"), loss_pct: of("loss") });
}
