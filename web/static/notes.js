/* Dari shared notes: every panel on the page ([data-notes-consult]) gets its client
 * (docs/notes.md). The OT core is notes/ot.js, the panel notes/panel.js. */

import { onPageExit } from "./lib/page.js";
import { Panel, forgetUnsent } from "./notes/panel.js";

const panels = Array.from(document.querySelectorAll("[data-notes-consult]"), (root) => {
  const panel = new Panel(root);
  root.dariNotes = panel; // for tests and curious engineers
  return panel;
});

// On the call page the note outlives the call only until its last edit is saved.
document.addEventListener("dari:call-ended", () => panels.forEach((panel) => panel.closeWhenSaved()));
onPageExit(() => panels.forEach((panel) => panel.stop()));
// Logging out forgets this tab's unsent edits: clinic PCs are shared.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && new URL(form.action, location.href).pathname === "/logout") {
    panels.forEach((panel) => panel.stop());
    forgetUnsent();
  }
});
