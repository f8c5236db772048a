/* The link policy of the call page: what we send, given what the link carries (Opus
 * FEC/DTX, video tiers, video back after a fall-back, the media-lost offer), as measured
 * in the network lab (docs/web.md, docs/benchmarks.md "Rural links"). Pure rules first. */

// Well below Chromium's own start estimate (300 kbps): on a 64 kbps link the first seconds
// decide whether speech survives. Lifted as soon as a sample shows a good link.
export const START_VIDEO_KBPS = 60;
export const TIERS = {
  start: { audioKbps: 16, videoKbps: START_VIDEO_KBPS, scale: 1 },
  good: { audioKbps: 32, videoKbps: 0, scale: 1 },
  weak: { audioKbps: 24, videoKbps: 220, scale: 2 },
  edge: { audioKbps: 16, videoKbps: 40, scale: 4 }, // and audio only after WEAK_SAMPLES
};
export const UP_SAMPLES = 3;          // clean samples in a row before a better tier
export const DOWN_SAMPLES = 2;        // worse samples in a row before a worse tier (one blip is noise)
export const VIDEO_BACK_SAMPLES = 5;  // clean samples in a row before video comes back by itself
export const VIDEO_BACK_FIRST_MS = 20000;
export const VIDEO_BACK_MAX_MS = 120000;
export const MEDIA_LOST_OFFER_MS = 20000;
export const RECONNECT_SETTLE_MS = 5000; // after a cut, samples this long do not count towards audio only

/** The tier a stats sample puts the link in, from loss and round trip only (loss is the
 * worse of what we receive and the last receiver report, a noisy figure: 1 % random loss
 * reads 2–4 % in many 2-s samples, hence 5 % for "weak"); not from the estimate: once we cap
 * what we send, the sender is app-limited and the browser's bitrate estimate sinks with
 * the cap, so it would keep a capped link in a low tier for good. */
export function tierOf(s) {
  const loss = s.lossPct || 0;
  const rtt = s.rttMs || 0;
  // Loss alone is a noisy 2-s sample (bursts of 10–30 % on a 3 % link): the round trip
  // tells an edge link (300 ms and a full queue) more reliably.
  if (loss > 20 || rtt > 350) return "edge";
  if (loss > 5 || rtt > 250) return "weak";
  return "good";
}

const ORDER = ["edge", "weak", "good"];

/** Next tier: down after DOWN_SAMPLES worse samples in a row, up one step after
 * UP_SAMPLES better ones. `upRun` counts better samples, `downRun` worse ones. */
export function nextTier(link, s) {
  const seen = tierOf(s);
  if (link.tier === "start") return { tier: seen, upRun: 0, downRun: 0 };
  const cur = ORDER.indexOf(link.tier);
  const now = ORDER.indexOf(seen);
  if (now < cur) {
    const downRun = (link.downRun || 0) + 1;
    if (downRun >= DOWN_SAMPLES) return { tier: seen, upRun: 0, downRun: 0 };
    return { tier: link.tier, upRun: 0, downRun };
  }
  if (now === cur) return { tier: link.tier, upRun: 0, downRun: 0 };
  const upRun = (link.upRun || 0) + 1;
  if (upRun >= UP_SAMPLES) return { tier: ORDER[cur + 1], upRun: 0, downRun: 0 };
  return { tier: link.tier, upRun, downRun: 0 };
}

/** A sample clean enough to try video again after an automatic fall-back. */
export function cleanForVideo(s) {
  return (s.lossPct || 0) < 3 && (s.rttMs || 0) < 400;
}

/** The video cap in kbps (0 = none): the user's choice and the link's, the lower. */
export function videoCapKbps(userKbps, link) {
  const tierKbps = TIERS[link.tier].videoKbps;
  if (!userKbps) return tierKbps;
  if (!tierKbps) return userKbps;
  return Math.min(userKbps, tierKbps);
}

export const OPUS_PTIME_MS = 40; // 40 ms packets: half the per-packet overhead of 20 ms

/** Opus with in-band FEC and DTX, and 40 ms packets, in a session description we are
 * about to apply. On a relayed 64 kbps link the headers (IP, UDP, TURN, RTP, SRTP: about
 * 66 bytes a packet) cost 26 kbps at 50 packets a second, more than the speech. */
export function tuneOpus(sdp) {
  const rtpmap = /^a=rtpmap:(\d+) opus\/48000/im.exec(sdp);
  if (!rtpmap) return sdp;
  const pt = rtpmap[1];
  const eol = sdp.indexOf("\r\n") >= 0 ? "\r\n" : "\n";
  const lines = sdp.split(eol);
  const fmtp = "a=fmtp:" + pt + " ";
  const want = { useinbandfec: "1", usedtx: "1" };
  const map = lines.findIndex((l) => l.startsWith("a=rtpmap:" + pt + " "));
  if (!lines.some((l) => l.startsWith("a=ptime:"))) lines.splice(map + 1, 0, "a=ptime:" + OPUS_PTIME_MS);
  const at = lines.findIndex((l) => l.startsWith(fmtp));
  if (at < 0) {
    lines.splice(map + 1, 0, fmtp + "minptime=10;useinbandfec=1;usedtx=1");
    return lines.join(eol);
  }
  const params = lines[at].slice(fmtp.length).split(";").filter((p) => p);
  const keys = params.map((p) => p.split("=")[0].trim());
  Object.keys(want).forEach((k) => {
    const i = keys.indexOf(k);
    if (i >= 0) params[i] = k + "=" + want[k];
    else params.push(k + "=" + want[k]);
  });
  lines[at] = fmtp + params.join(";");
  return lines.join(eol);
}

/** The encodings of our camera and microphone for the current tier. */
export function tuneAudio(enc, link) {
  enc.maxBitrate = TIERS[link.tier].audioKbps * 1000;
}

export function tuneVideo(params, enc, link, userKbps, height) {
  const cap = videoCapKbps(userKbps, link);
  if (cap > 0) enc.maxBitrate = cap * 1000;
  else delete enc.maxBitrate;
  // Keep the picture moving: a smaller picture, never a slide show.
  const scale = TIERS[link.tier].scale;
  enc.scaleResolutionDownBy = height && height / scale >= 90 ? scale : 1;
  params.degradationPreference = "maintain-framerate";
}

export function newLinkState() {
  return { tier: "start", upRun: 0, cleanRun: 0, backoffMs: VIDEO_BACK_FIRST_MS, downRun: 0, audioOnlySince: 0, downSince: 0, cameBack: false };
}
