/* In-call chat over the `chat` frame; lines typed offline go after the reconnect. Text only. */

import { $, el } from "../lib/page.js";
import { send, state, t } from "./state.js";
import { clock } from "./ui.js";

function appendChat(name, text, at, mine) {
  const item = el("li", mine ? "mine" : null);
  item.append(
    el("span", "chat-head", name + " · " + clock(at ? new Date(at) : new Date())),
    el("span", "chat-text", text),
  );
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
  if (!send(frame)) state.outbox.push(frame);
  appendChat(t("you"), text, null, true);
  input.value = "";
}

export function flushOutbox() {
  while (state.outbox.length) send(state.outbox.shift());
}
