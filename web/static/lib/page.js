/* Small helpers shared by the pages' scripts. */

/** `t(key, vars)` over data-* strings the server translated; `%(name)s` as in gettext. */
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

/** An element with a class and text (never parsed as HTML). */
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

export function post(url, body, headers) {
  return fetch(url, { method: "POST", credentials: "same-origin", headers: { ...headers, "X-CSRF-Token": csrf() }, body });
}

export async function postJSON(url, body) {
  const response = await post(url, JSON.stringify(body || {}), { "Content-Type": "application/json" });
  if (!response.ok) throw new Error("HTTP " + response.status);
  return response.json();
}

/** Leaving the page runs `stop`; a page back from the bfcache reloads (its sockets are gone). */
export function onPageExit(stop) {
  addEventListener("pagehide", stop);
  addEventListener("pageshow", (event) => {
    if (event.persisted) location.reload();
  });
}
