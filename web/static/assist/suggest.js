// The triage assist on the new-request page: as the GP writes the clinical question, ask
// the server (debounced) for a specialty and urgency suggestion and show it under the
// question. It only suggests: "Use …" and "Mark as urgent" set the form's own fields, and
// the id of the suggestion last shown goes with the form so the choice is recorded.
import { Timers } from "../lib/timers.js";
import { $, el, csrf, translator } from "../lib/page.js";

const DEBOUNCE_MS = 500;
const MIN_CHARS = 8;

const box = $("assist");
const form = box ? box.closest("form") : null;
const question = form ? form.querySelector('[name="clinical_question"]') : null;

if (box && form && question) {
  const translate = translator(box.dataset);
  // The messages keep gettext's "%%" for a literal percent sign (python-format).
  const t = (key, vars) => translate(key, vars).replace(/%%/g, "%");
  const timers = new Timers();
  const specialty = form.querySelector('[name="specialty_id"]');
  const urgency = form.querySelector('[name="urgency"]');
  const hidden = $("assist-suggestion");
  const status = $("assist-status");
  const list = $("assist-specialties");
  const urgencyBox = $("assist-urgency");
  const cold = $("assist-cold");
  let pending = null;
  let sent = 0; // answers to older requests are dropped
  let lastText = "";
  let off = false;

  function clear() {
    list.replaceChildren();
    urgencyBox.replaceChildren();
    cold.hidden = true;
  }

  function showSpecialties(options) {
    list.replaceChildren();
    for (const option of options) {
      const item = el("li", "assist-option");
      const percent = Math.round(option.confidence * 100);
      item.append(el("strong", null, option.name), " ");
      item.append(el("span", "muted", t("confidence", { percent })), " ");
      const use = el("button", "assist-use", t("use", { name: option.name }));
      use.type = "button";
      use.dataset.specialtyId = String(option.id);
      use.addEventListener("click", () => {
        if (!specialty) return;
        specialty.value = String(option.id);
        specialty.dispatchEvent(new Event("change", { bubbles: true }));
      });
      item.append(use);
      if (option.words.length) {
        item.append(el("div", "muted small", t("words", { words: option.words.join(", ") })));
      }
      list.append(item);
    }
  }

  function showUrgency(answer) {
    urgencyBox.replaceChildren();
    if (!answer.raised) return;
    const chosenUrgent = urgency && urgency.value === "urgent";
    const line = el("p", "alert assist-urgent", chosenUrgent ? t("kept-urgent") : t("urgent"));
    urgencyBox.append(line);
    const reasons = el("ul", "assist-reasons");
    for (const reason of answer.reasons) reasons.append(el("li", null, reason.reason));
    urgencyBox.append(reasons);
    if (!chosenUrgent && urgency) {
      const mark = el("button", "assist-mark-urgent", t("mark-urgent"));
      mark.type = "button";
      mark.addEventListener("click", () => {
        urgency.value = "urgent";
        urgency.dispatchEvent(new Event("change", { bubbles: true }));
        showUrgency(answer);
      });
      urgencyBox.append(mark);
    }
  }

  async function ask() {
    const text = question.value.trim();
    if (off || text === lastText) return;
    lastText = text;
    if (text.length < MIN_CHARS) {
      box.hidden = true;
      return;
    }
    const mine = ++sent;
    let response;
    try {
      response = await fetch(box.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify({ text, urgency: urgency ? urgency.value : "routine" }),
      });
    } catch (error) {
      if (mine === sent) status.textContent = t("failed");
      return;
    }
    if (mine !== sent) return;
    if (response.status === 403 || response.status === 401) {
      off = true; // not switched on for this organisation: stay out of the way
      box.hidden = true;
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      clear();
      const refused = body.error && body.error.code === "registration_number_refused";
      status.textContent = refused ? t("refused") : t("failed");
      box.hidden = false;
      return;
    }
    hidden.value = body.suggestion_id || "";
    if (!body.specialties.length && !body.urgency.raised) {
      box.hidden = true;
      return;
    }
    status.textContent = "";
    showSpecialties(body.specialties);
    showUrgency(body.urgency);
    cold.hidden = !body.cold_start;
    cold.textContent = t("cold", { real: body.real_consults, needed: body.needed });
    box.hidden = false;
  }

  function schedule() {
    if (pending !== null) timers.cancel(pending);
    pending = timers.after(DEBOUNCE_MS, () => {
      pending = null;
      ask();
    });
  }

  question.addEventListener("input", schedule);
  if (urgency) {
    urgency.addEventListener("change", () => {
      lastText = "";
      schedule();
    });
  }
  window.addEventListener("pagehide", () => timers.clear());
  // Is the assist on for this GP? Asking also has the server load its model now, while
  // the GP fills in the first fields, rather than on the first suggestion.
  fetch(box.dataset.statusUrl, { credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : { enabled: false }))
    .then((body) => {
      if (!body.enabled) off = true;
      else if (question.value.trim()) schedule();
    })
    .catch(() => {});
}
