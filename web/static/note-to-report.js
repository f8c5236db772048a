/* Call page: the note panel's "start the report from the note" button (notes/panel.js
 * fetches the selection or all of the note and announces it with dari:note-draft) puts
 * the text into the report draft on the server, so the specialist need not leave the
 * call; a link opens the report. */

import { postJSON } from "./lib/page.js";

const box = document.getElementById("note-to-report");
if (box) {
  const text = box.querySelector("[data-text]");
  document.addEventListener("dari:note-draft", (event) => {
    postJSON(box.dataset.url, { text: (event.detail && event.detail.text) || "" }).then(
      () => { text.textContent = box.dataset.done; box.hidden = false; },
      () => { text.textContent = box.dataset.failed; box.hidden = false; },
    );
  });
}
