/* Link rules: pure functions, thresholds documented in docs/web.md. */

export const WEAK_SAMPLES = 3;       // consecutive bad samples (about 6 s) before falling back
export const STATS_EVERY_MS = 2000;
export const REPORT_EVERY_MS = 15000;
export const AUTO_PAUSE_MS = 60000;  // no automatic fall-back for 1 min after the user's "video on"

export function linkLevel(s) {
  if (s.rttMs == null && s.lossPct == null) return "unknown";
  const rtt = s.rttMs || 0;
  const loss = s.lossPct || 0;
  if (rtt < 300 && loss < 3) return "good";
  if (rtt < 800 && loss < 10) return "fair";
  return "poor";
}

export function tooWeakForVideo(s) {
  return (s.lossPct != null && s.lossPct > 15) ||
    (s.rttMs != null && s.rttMs > 1500) ||
    // low, not 120: a capped sender's estimate sinks with the cap (lab: 80–150 kbps at 10+ fps)
    (s.availableKbps != null && s.availableKbps < 60);
}

export function tooWeakForAudio(s) {
  return (s.lossPct != null && s.lossPct > 30) || (s.rttMs != null && s.rttMs > 3000);
}

export function median(values) {
  const v = values.filter((x) => x != null).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : 0;
}
