/* A confirmation before what cannot be undone: a form, or the button that submits it,
 * with data-confirm asks first (also in parts a page refreshes live: the listener is on
 * the document). Loaded by the pages that have such buttons. */

document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = (button && button.dataset.confirm) || event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
