/* Small helpers shared by the pages' scripts: translated strings, DOM, JSON requests,
 * and leaving the page. */

/** `t(key, vars)` over strings the server translated into data-* attributes: every
 * word on screen goes through the catalog. `%(name)s` placeholders as in gettext. */
export function translator(dataset) {
  return function t(key, vars) {
    const text = dataset[key] || key;
    if (!vars) return text;
    return text.replace(/%\((\w+)\)s/g, (_, name) => (vars[name] == null ? "" : String(vars[name])));
  };
}

export function $(id) {
  return document.getElementById(id);
}

/** An element with a class and text (always text: nothing we show is parsed as HTML). */
export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text != null) node.textContent = text;
  return node;
}

export function csrf() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

export async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body || {}),
  });
  if (!response.ok) throw new Error("HTTP " + response.status);
  return response.json();
}

/** Leaving the page stops everything `stop` owns (sockets, timers). A page brought back
 * from the back/forward cache reloads rather than revive connections that are gone. */
export function onPageExit(stop) {
  addEventListener("pagehide", stop);
  addEventListener("pageshow", (event) => {
    if (event.persisted) location.reload();
  });
}
