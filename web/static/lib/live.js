/* Pages that follow what the other side does. A page marks the parts that may change
 * with `data-live` (and an id); when news about what it shows arrives over the user
 * channel (/ws/user, lib/ws-client.js), `follow` re-fetches the page and swaps each
 * marked part for its new version — except a part the user is typing in. Any page (or
 * fragment: add `data-live` and an id) gets this by calling `follow(match)`. */

import { catchUp, loadCatchUp } from "./catchup.js";
import { connect } from "./ws-client.js";
import { onPageExit } from "./page.js";
import { Timers } from "./timers.js";

/** True while the user has something unsent in `region` (focus, or a changed field). */
export function busy(region) {
  const active = document.activeElement;
  if (active && active !== document.body && region.contains(active) && active.matches("input, textarea, select")) {
    return true;
  }
  return Array.from(region.querySelectorAll("textarea, input")).some((field) => {
    if (field.type === "hidden" || field.type === "submit") return false;
    if (field.type === "checkbox" || field.type === "radio") return field.checked !== field.defaultChecked;
    if (field.type === "file") return field.files && field.files.length > 0;
    return field.value !== field.defaultValue;
  });
}

/** Re-fetch the page and replace its [data-live] parts; the number replaced. A part that
 * appears or disappears means the page changed shape: it is reloaded (if nothing is
 * being typed anywhere). */
export async function refreshRegions(url) {
  const response = await fetch(url || location.pathname + location.search, {
    credentials: "same-origin",
    headers: { Accept: "text/html" },
  });
  if (!response.ok) return 0;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  const current = Array.from(document.querySelectorAll("[data-live][id]"));
  const wanted = Array.from(fresh.querySelectorAll("[data-live][id]"), (node) => node.id);
  const reshaped = wanted.some((id) => !document.getElementById(id));
  if (reshaped && !current.some(busy) && !Array.from(document.forms).some(busy)) {
    location.reload();
    return 0;
  }
  let replaced = 0;
  current.forEach((region) => {
    const next = fresh.getElementById(region.id);
    if (!next || busy(region)) return;
    region.replaceWith(document.importNode(next, true));
    replaced += 1;
  });
  document.dispatchEvent(new CustomEvent("dari:live-refreshed", { detail: { replaced } }));
  return replaced;
}

/** Follow the user channel; `matches(notification)` says whether it concerns this page. */
export function follow(matches, options = {}) {
  const timers = new Timers();
  const openedAt = Date.now();
  const state = { refreshes: 0, received: [] };
  // Starts where the inbox got to (read, never written here: the inbox keeps it);
  // reconnects from its floor, so a notification committed late is not skipped.
  let heard = loadCatchUp();

  function schedule() {
    // Several events at once (a transition and its notification) make one refresh.
    timers.clear();
    timers.after(options.delayMs || 250, () => {
      refreshRegions().then(() => {
        state.refreshes += 1;
      }, () => {});
    });
  }

  const client = connect({
    path: options.path || "/ws/user",
    hello: () => ({ v: 1, type: "subscribe", after_id: heard.floor }),
    onFrame: (frame) => {
      if (frame.type !== "notification") return;
      const step = catchUp(heard, frame);
      heard = step.state;
      if (!step.fresh) return;
      const at = Date.parse(frame.created_at);
      if (!isNaN(at) && at < openedAt - 30000) return; // already on the page
      state.received.push(frame);
      if (matches(frame)) schedule();
    },
    ping: () => ({ v: 1, type: "ping" }),
    pingMs: 10000,
    silenceMs: 25000,
    baseMs: 1000,
    maxMs: 30000,
    finalCodes: [4403],
  });
  onPageExit(() => {
    timers.clear();
    client.close();
  });
  return state;
}
