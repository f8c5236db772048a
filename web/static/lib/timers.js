/* Timers that can be cleared all at once. Every timer of the call page, the notes panel,
 * the inbox and the WebSocket client lives in the registry of whoever owns it, so hang-up
 * or leaving the page leaves nothing firing (`make lint` keeps raw setTimeout/setInterval
 * out of these modules; a browser test counts what still fires after hang-up). */

export class Timers {
  constructor() {
    this.live = new Map(); // id → the function that clears it
  }

  /** Run `fn` once after `ms`. */
  after(ms, fn) {
    const id = setTimeout(() => {
      this.live.delete(id);
      fn();
    }, ms);
    this.live.set(id, clearTimeout);
    return id;
  }

  /** Run `fn` every `ms` until cleared. */
  every(ms, fn) {
    const id = setInterval(fn, ms);
    this.live.set(id, clearInterval);
    return id;
  }

  cancel(id) {
    const clear = this.live.get(id);
    if (!clear) return;
    clear(id);
    this.live.delete(id);
  }

  /** Clear everything still pending. */
  clear() {
    this.live.forEach((clear, id) => clear(id));
    this.live.clear();
  }

  get size() {
    return this.live.size;
  }
}
