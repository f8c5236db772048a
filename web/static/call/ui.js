/* What the call page shows: the status line, the banner over the video, the error line,
 * toggle buttons and the remote video tiles. */

import { $, el } from "../lib/page.js";
import { cfg, t } from "./state.js";

export function setStatus(key, vars) {
  const status = $("call-status");
  status.textContent = t(key, vars);
  status.dataset.state = key;
}

/** The banner over the video: one at a time, with an optional action button and the
 * "continue in writing" link. */
export function showBanner(key, action, withWriting) {
  const banner = $("call-banner");
  $("call-banner-text").textContent = t(key);
  banner.dataset.kind = key;
  const button = $("call-banner-action");
  if (action) {
    button.textContent = t(action.label);
    button.onclick = action.run;
    button.hidden = false;
  } else {
    button.hidden = true;
    button.onclick = null;
  }
  if ($("call-banner-writing")) $("call-banner-writing").hidden = !withWriting;
  banner.hidden = false;
}

export function hideBanner(kind) {
  const banner = $("call-banner");
  if (!kind || banner.dataset.kind === kind) banner.hidden = true;
}

// ---- Errors: what failed, in words, until whatever failed recovers ----

const errors = new Map(); // owner (a peer id, "signaling") → message

/** Show an error (negotiation, ICE, signaling) in the page's error line, not only in the
 * console; `owner` names what must recover for it to go away. */
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

/** A short name for a failure (a DOMException's name: a support engineer can look it up). */
export function errorName(e) {
  return (e && (e.name || e.message)) || "Error";
}

export function setPressed(button, pressed, key) {
  button.setAttribute("aria-pressed", pressed ? "true" : "false");
  button.textContent = t(key);
}

/** Hours and minutes in the user's language and zone (the clinic's clock, from the page). */
export function clock(date) {
  const options = { hour: "2-digit", minute: "2-digit" };
  if (cfg.timezone) options.timeZone = cfg.timezone;
  try {
    return date.toLocaleTimeString(document.documentElement.lang || undefined, options);
  } catch (e) {
    return date.toLocaleTimeString();
  }
}

// ---- Remote video tiles ----

export function updateEmpty() {
  $("stage-empty").hidden = $("remote-tiles").querySelector(".remote-tile") !== null;
}

export function showRemoteTrack(peer, mediaTrack, stream) {
  const key = stream ? stream.id : mediaTrack.id;
  let tile = peer.tiles.get(key);
  if (!tile) {
    const isScreen = peer.tiles.size > 0;
    tile = el("figure", "remote-tile" + (isScreen ? " screen" : ""));
    const video = el("video");
    video.autoplay = true;
    video.playsInline = true;
    const caption = el("figcaption", null, isScreen ? peer.name + " · " + t("screen") : peer.name);
    const badge = el("span", "tile-badge", t("remoteAudioOnly"));
    badge.hidden = true;
    tile.appendChild(video);
    tile.appendChild(caption);
    tile.appendChild(badge);
    tile.dataset.peer = peer.id;
    $("remote-tiles").appendChild(tile);
    peer.tiles.set(key, tile);
    video.srcObject = stream || new MediaStream([mediaTrack]);
    if (stream) {
      const shown = tile;
      stream.onremovetrack = () => {
        if (!stream.getTracks().length) {
          shown.remove();
          peer.tiles.delete(key);
          updateEmpty();
        }
      };
    }
  }
  if (mediaTrack.kind === "video") {
    const shown = tile;
    const badge = shown.querySelector(".tile-badge");
    // No video packets for a while (the other side paused video): say so on the tile.
    mediaTrack.onmute = () => {
      badge.hidden = false;
      shown.classList.add("audio-only");
    };
    mediaTrack.onunmute = () => {
      badge.hidden = true;
      shown.classList.remove("audio-only");
    };
  }
  updateEmpty();
}
