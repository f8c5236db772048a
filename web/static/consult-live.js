/* The consult page follows the consult: news about it on the user channel (accepted,
 * booked, call started, report signed, closed, a message) refreshes the page's live
 * parts (lib/live.js), so nobody has to reload to see what the other side did. */

import { follow } from "./lib/live.js";

const root = document.getElementById("consult-live");
if (root && window.WebSocket) {
  const consult = root.dataset.consult;
  const about = (n) => {
    const p = n.payload || {};
    return String(p.consult || p.consult_id || "") === consult;
  };
  window.dariLive = follow(about, { path: root.dataset.ws });
}
