/* What the call page shows: status, banner, error line, toggles and remote video tiles. */

import { $, el } from "../lib/page.js";
import { cfg, t } from "./state.js";

export function setStatus(key, vars) {
  const status = $("call-status");
  status.textContent = t(key, vars);
  status.dataset.state = key;
}

/** One banner at a time. */
export function showBanner(key, action, withWriting) {
  const banner = $("call-banner");
  $("call-banner-text").textContent = t(key);
  banner.dataset.kind = key;
  const button = $("call-banner-action");
  button.hidden = !action;
  button.onclick = action ? action.run : null;
  if (action) button.textContent = t(action.label);
  if ($("call-banner-writing")) $("call-banner-writing").hidden = !withWriting;
  banner.hidden = false;
}

export function hideBanner(kind) {
  const banner = $("call-banner");
  if (!kind || banner.dataset.kind === kind) banner.hidden = true;
}

const errors = new Map(); // owner (a peer id, "signaling") → message; cleared when it recovers

export function showError(owner, key, vars) {
  errors.delete(owner);
  errors.set(owner, { key, text: t(key, vars) }); // the newest last
  renderErrors();
}

export function clearError(owner) {
  if (errors.delete(owner)) renderErrors();
}

function renderErrors() {
  const line = $("call-error");
  const newest = Array.from(errors.values()).pop();
  line.textContent = newest ? newest.text : "";
  line.dataset.kind = newest ? newest.key : "";
  line.hidden = !newest;
}

/** A DOMException's name: a support engineer can look it up. */
export function errorName(e) {
  return (e && (e.name || e.message)) || "Error";
}

export function setPressed(button, pressed, key) {
  button.setAttribute("aria-pressed", pressed ? "true" : "false");
  button.textContent = t(key);
}

/** Hours and minutes in the user's language and the clinic's zone. */
export function clock(date) {
  const options = { hour: "2-digit", minute: "2-digit" };
  if (cfg.timezone) options.timeZone = cfg.timezone;
  try {
    return date.toLocaleTimeString(document.documentElement.lang || undefined, options);
  } catch (e) {
    return date.toLocaleTimeString();
  }
}

export function updateEmpty() {
  $("stage-empty").hidden = $("remote-tiles").querySelector(".remote-tile") !== null;
}

export function showRemoteTrack(peer, mediaTrack, stream) {
  const key = stream ? stream.id : mediaTrack.id;
  let tile = peer.tiles.get(key);
  if (!tile) {
    const isScreen = peer.tiles.size > 0;
    const made = el("figure", "remote-tile" + (isScreen ? " screen" : ""));
    const video = el("video");
    video.autoplay = true;
    video.playsInline = true;
    const badge = el("span", "tile-badge", t("remoteAudioOnly"));
    badge.hidden = true;
    made.append(video, el("figcaption", null, isScreen ? peer.name + " · " + t("screen") : peer.name), badge);
    made.dataset.peer = peer.id;
    $("remote-tiles").appendChild(made);
    peer.tiles.set(key, made);
    video.srcObject = stream || new MediaStream([mediaTrack]);
    if (stream) {
      stream.onremovetrack = () => {
        if (stream.getTracks().length) return;
        made.remove();
        peer.tiles.delete(key);
        updateEmpty();
      };
    }
    tile = made;
  }
  if (mediaTrack.kind === "video") {
    const shown = tile;
    const badge = shown.querySelector(".tile-badge");
    // muted: the other side paused its video
    const paused = (on) => () => {
      badge.hidden = !on;
      shown.classList.toggle("audio-only", on);
    };
    mediaTrack.onmute = paused(true);
    mediaTrack.onunmute = paused(false);
  }
  updateEmpty();
}
