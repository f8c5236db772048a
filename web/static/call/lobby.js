/* Guests: invitations, the lobby (knock → admit / refuse), and a guest's own way in. */

import { $, el, postJSON } from "../lib/page.js";
import { send, state, t } from "./state.js";
import { clock } from "./ui.js";

export function onKnock(info) {
  const list = $("lobby");
  if (!list || !info || list.querySelector('[data-peer="' + info.peer_id + '"]')) return;
  const item = el("li");
  item.dataset.peer = info.peer_id;
  item.appendChild(el("span", null, t("guestWaiting", { name: info.name })));
  [["admit", "primary", "admit"], ["deny", null, "refuse"]].forEach(([type, cls, label]) => {
    const button = el("button", cls, t(label));
    button.type = "button";
    button.onclick = () => {
      send({ type, peer: info.peer_id });
      item.remove();
    };
    item.appendChild(button);
  });
  list.appendChild(item);
}

export function removeKnock(id) {
  const list = $("lobby");
  const item = list && list.querySelector('[data-peer="' + id + '"]');
  if (item) item.remove();
}

export async function invite() {
  const nameInput = $("guest-name");
  const name = (nameInput && nameInput.value.trim()) || nameInput.placeholder;
  try {
    const made = await postJSON("/api/consults/" + encodeURIComponent(state.room) + "/invitations", { guest_name: name });
    $("invite-text").textContent = t("inviteCreated", { time: clock(new Date(made.expires_at)) });
    $("invite-link").value = new URL(made.url, location.href).href;
  } catch (e) {
    $("invite-text").textContent = t("inviteFailed");
    $("invite-link").value = "";
  }
  $("invite-result").hidden = false;
}

export function copyInvite() {
  const input = $("invite-link");
  input.select();
  if (navigator.clipboard) navigator.clipboard.writeText(input.value).catch(() => {});
  $("invite-copy").textContent = t("copied");
}

/** Spend the invitation (in the URL fragment, never in server logs) for a join token. */
export async function redeemGuest() {
  const token = location.hash.slice(1);
  history.replaceState(null, "", location.pathname);
  const made = await postJSON("/api/invitations/redeem", { token });
  state.joinToken = made.join_token;
  state.room = made.room || state.room;
}
