/* The user channel's catch-up state, shared by the inbox and the pages that follow the
 * channel (lib/live.js): gap-free on reconnect although ids may commit out of order
 * (docs/signaling.md "User channel"). Kept in localStorage, merged across tabs. */

const KEY = "dari.notifications.catchup";

/** The catch-up rule (pure: tested against the server in tests/signaling). `state` is
 * {floor, seen}: every notification at or below `floor` has been handled, and `seen`
 * lists those above it that have been. Returns the next state and whether `frame` is
 * new. A frame's `floor` says what the server has sent before it: the page keeps the
 * higher floor and forgets the ids below it; it reconnects with `after_id: floor`. */
export function catchUp(state, frame) {
  const fresh = frame.id > state.floor && state.seen.indexOf(frame.id) < 0;
  let floor = state.floor;
  if (typeof frame.floor === "number" && frame.floor > floor) floor = frame.floor;
  const seen = (fresh ? state.seen.concat([frame.id]) : state.seen).filter((id) => id > floor);
  return { state: { floor, seen }, fresh };
}

/** The state kept for the next page: the higher floor of the two, the ids above it. */
export function mergeCatchUp(a, b) {
  const floor = Math.max(a.floor, b.floor);
  const seen = a.seen.concat(b.seen.filter((id) => a.seen.indexOf(id) < 0)).filter((id) => id > floor);
  return { floor, seen };
}

export function loadCatchUp() {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) || "null");
    if (stored && typeof stored.floor === "number" && Array.isArray(stored.seen)) {
      return { floor: stored.floor, seen: stored.seen.filter((id) => typeof id === "number") };
    }
  } catch (e) { /* private mode, or not ours */ }
  return { floor: 0, seen: [] };
}

export function saveCatchUp(state) {
  try {
    // Another tab may have written since: keep what either knows.
    const merged = mergeCatchUp(loadCatchUp(), state);
    localStorage.setItem(KEY, JSON.stringify(merged));
  } catch (e) { /* ignore */ }
}
