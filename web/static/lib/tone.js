/* A ring tone made with WebAudio (no audio file): two short beeps, repeated by whoever
 * rings until the ring stops. One AudioContext per page, made on first use. */

let ctx = null;

/** Play one ring (two beeps at 880 Hz); false when the browser allows no sound yet
 * (no user gesture): the ring is still on screen. */
export function ringOnce() {
  try {
    if (!ctx) ctx = new (window.AudioContext || window.webkitAudioContext)();
    if (ctx.state === "suspended") ctx.resume();
    [0, 0.35].forEach((at) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.2;
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start(ctx.currentTime + at);
      osc.stop(ctx.currentTime + at + 0.2);
    });
    return ctx.state === "running";
  } catch (e) {
    return false;
  }
}

/** Close the page's audio (leaving the page). */
export function closeAudio() {
  if (ctx) {
    try {
      ctx.close();
    } catch (e) { /* already closed */ }
    ctx = null;
  }
}
