/* Dari shared notes: every panel on the page ([data-notes-consult]) gets its client
 * (docs/notes.md). The OT core is notes/ot.js, the panel notes/panel.js. */

import { onPageExit } from "./lib/page.js";
import { Panel } from "./notes/panel.js";

const panels = Array.from(document.querySelectorAll("[data-notes-consult]"), (root) => {
  const panel = new Panel(root);
  root.dariNotes = panel; // for tests and curious engineers
  return panel;
});

// On the call page the note outlives the call only until its last edit is saved.
document.addEventListener("dari:call-ended", () => panels.forEach((panel) => panel.closeWhenSaved()));
onPageExit(() => panels.forEach((panel) => panel.stop()));
