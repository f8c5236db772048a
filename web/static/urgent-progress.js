/* The urgent ring's progress on the GP's consult page (consults/_urgent_progress.html):
 * who is being rung, since when, what comes next. State read from the server every
 * second while the ring is on (server/scheduling/urgent_views.py: progress); when a
 * specialist accepts, the page reloads once so the consult's new status and its actions
 * (joining the call) show, unless the GP is typing. */

import { onPageExit } from "./lib/page.js";
import { Timers } from "./lib/timers.js";

const EVERY_MS = 1000;

function start(box) {
  const timers = new Timers();
  let wasRinging = null;
  let reading = false;

  function typing() {
    const active = document.activeElement;
    return !!active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName) && active.value !== "";
  }

  async function read() {
    if (reading) return;
    reading = true;
    try {
      const response = await fetch(box.dataset.src, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const body = doc.querySelector(".urgent-progress-body");
        if (body) {
          box.replaceChildren(document.importNode(body, true));
          const ringing = body.dataset.ringing === "1";
          if (!ringing) timers.clear();
          if (wasRinging === true && !ringing && !typing()) location.reload();
          wasRinging = ringing;
        }
      }
    } catch (e) { /* offline: the next tick reads it again */ }
    reading = false;
  }

  read();
  timers.every(EVERY_MS, read);
  onPageExit(() => timers.clear());
  window.dariUrgentProgress = { read };
}

const box = document.getElementById("urgent-progress");
if (box) start(box);
