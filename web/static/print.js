// The print button of the printable report (no inline scripts under our CSP).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("print-button");
  if (button) button.addEventListener("click", () => window.print());
});
