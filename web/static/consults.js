/* Consult page: a confirmation before what cannot be undone (buttons and forms with
 * data-confirm, also in parts the page refreshes live), and the report draft saving
 * itself while the specialist types, its time shown in the organisation's zone. */

import "./lib/confirm.js";
import { csrf } from "./lib/page.js";
import { Timers } from "./lib/timers.js";

function clockTime(status) {
  try {
    return new Intl.DateTimeFormat(status.dataset.locale || undefined, {
      timeZone: status.dataset.timezone || undefined,
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    }).format(new Date());
  } catch (e) {
    return new Date().toISOString().slice(11, 19);
  }
}

function autosave(form) {
  const status = document.getElementById("autosave-status");
  const timers = new Timers();
  let inFlight = false;

  function payload() {
    const data = new FormData(form);
    const needed = data.get("referral_needed") === "true";
    return {
      findings: data.get("findings") || "",
      assessment: data.get("assessment") || "",
      recommendation: data.get("recommendation") || "",
      follow_up: data.get("follow_up") || "",
      referral_needed: needed,
      referral_urgency: needed ? data.get("referral_urgency") || "none" : "none",
    };
  }

  async function save() {
    if (inFlight) { schedule(); return; }
    inFlight = true;
    try {
      const response = await fetch(form.dataset.autosave, {
        method: "PUT",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify(payload()),
        credentials: "same-origin",
      });
      if (response.ok) {
        status.textContent = (status.dataset.saved || "%(time)s").replace("%(time)s", clockTime(status));
        // Written as the page was drawn: a live refresh does not count it as unsent.
        form.querySelectorAll("textarea").forEach((t) => { t.defaultValue = t.value; });
      } else {
        status.textContent = status.dataset.failed || "";
      }
    } catch (error) {
      status.textContent = status.dataset.failed || "";
    } finally {
      inFlight = false;
    }
  }

  function schedule() {
    timers.clear();
    timers.after(1500, save);
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  addEventListener("pagehide", () => timers.clear());
}

const form = document.getElementById("report-form");
if (form && form.dataset.autosave) autosave(form);
