/* Timers cleared all at once, so hang-up or leaving leaves nothing firing (lint refuses raw ones). */

export class Timers {
  constructor() {
    this.live = new Map(); // id → the function that clears it
  }

  after(ms, fn) {
    const id = setTimeout(() => {
      this.live.delete(id);
      fn();
    }, ms);
    this.live.set(id, clearTimeout);
    return id;
  }

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

  clear() {
    this.live.forEach((clear, id) => clear(id));
    this.live.clear();
  }

  get size() {
    return this.live.size;
  }
}
