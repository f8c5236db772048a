/* In-call chat over the signaling `chat` frame; lines typed while disconnected are sent
 * after the reconnect. Text is always shown as text. */

import { $, el } from "../lib/page.js";
import { send, state, t } from "./state.js";
import { clock } from "./ui.js";

function appendChat(name, text, at, mine) {
  const item = el("li", mine ? "mine" : null);
  const when = at ? new Date(at) : new Date();
  item.appendChild(el("span", "chat-head", name + " · " + clock(when)));
  item.appendChild(el("span", "chat-text", text));
  const log = $("chat-log");
  log.appendChild(item);
  log.scrollTop = log.scrollHeight;
}

export function onChat(f) {
  if (f.from && f.from === state.peerId) return; // our own, already shown
  appendChat(f.name || "", f.text, f.at, false);
}

export function sendChat(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  const frame = { type: "chat", text: text.slice(0, 2000) };
  if (!send(frame)) state.outbox.push(frame); // sent after the reconnect
  appendChat(t("you"), text, null, true);
  input.value = "";
}

/** After a (re)join: what was typed while the socket was down. */
export function flushOutbox() {
  while (state.outbox.length) send(state.outbox.shift());
}
