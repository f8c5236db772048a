// Consult page: the report draft saves itself while the specialist types.
"use strict";
(() => {
  const form = document.getElementById("report-form");
  if (!form || !form.dataset.autosave) return;
  const status = document.getElementById("autosave-status");
  const token = document.querySelector('meta[name="csrf-token"]').content;
  let timer = null;
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
        headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
        body: JSON.stringify(payload()),
        credentials: "same-origin",
      });
      if (response.ok) {
        status.textContent = (document.documentElement.lang === "ko" ? "자동 저장됨 " : "Saved ") +
          new Date().toLocaleTimeString();
      } else {
        const body = await response.json().catch(() => ({}));
        status.textContent = (body.error && body.error.message) || ("HTTP " + response.status);
      }
    } catch (error) {
      status.textContent = document.documentElement.lang === "ko"
        ? "저장하지 못했습니다 (연결 확인)" : "Not saved (check the connection)";
    } finally {
      inFlight = false;
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(save, 1500);
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
})();
