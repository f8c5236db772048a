/* The shared-notes panel: textarea binding, presence, and the note's socket (the shared
 * client, lib/ws-client.js, speaking the protocol of docs/notes.md). */

import { Timers } from "../lib/timers.js";
import { connect } from "../lib/ws-client.js";
import { Client, advance, cpLength, diff, transformCaret } from "./ot.js";

const RENDER_PEERS_MS = 5000; // "typing" fades after a few seconds of quiet

function randomId() {
  const a = new Uint8Array(12);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => ("0" + b.toString(16)).slice(-2)).join("");
}

export class Panel {
  constructor(root) {
    this.root = root;
    this.text = root.querySelector("[data-notes-text]");
    this.status = root.querySelector("[data-notes-status]");
    this.presence = root.querySelector("[data-notes-presence]");
    this.consult = root.getAttribute("data-notes-consult");
    this.client = new Client(randomId(), "", 0);
    this.joined = false;
    this.frozen = false;
    this.composing = false;
    this.closing = false;
    this.held = [];
    this.peers = {};
    this.fresh = true;
    this.timers = new Timers();
    this.text.addEventListener("input", () => this.onInput());
    this.draftButton = root.querySelector("[data-notes-draft]");
    if (this.draftButton) this.draftButton.addEventListener("click", () => this.draft());
    this.text.addEventListener("compositionstart", () => { this.composing = true; });
    this.text.addEventListener("compositionend", () => {
      this.composing = false;
      this.onInput();
      this.flushHeld();
    });
    this.text.addEventListener("select", () => this.sendPresence(false));
    this.text.addEventListener("keyup", () => this.sendPresence(false));
    addEventListener("beforeunload", (e) => {
      if (this.client.outstanding) {
        e.preventDefault();
        e.returnValue = "";
      }
    });
    this.timers.every(RENDER_PEERS_MS, () => this.renderPeers());
    this.ws = connect({
      path: "/notes/ws/" + encodeURIComponent(this.consult),
      // Rejoin from our revision: the server sends what we missed, then we resend
      // our unconfirmed operation with the same seq.
      hello: () => ({ type: "join", client: this.client.clientId, rev: this.fresh ? null : this.client.revision }),
      onFrame: (m) => this.onMessage(m),
      onConnecting: () => this.show(this.fresh ? "connecting" : "reconnecting"),
      onDown: ({ code }) => {
        this.joined = false;
        if (code === 4403) this.show("refused");
        else this.show(this.client.outstanding ? "offline_pending" : "offline");
      },
      // Every 5 s: the server checks the note (signed meanwhile?) on each heartbeat.
      pingMs: 5000,
      silenceMs: 20000,
      baseMs: 1000,
      maxMs: 30000,
      finalCodes: [4403],
    });
  }

  label(key) {
    return this.root.getAttribute("data-l-" + key) || key;
  }

  show(state) {
    this.status.textContent = this.label(state);
    this.root.setAttribute("data-state", state);
    this.text.readOnly = this.frozen || (!this.joined && this.fresh);
  }

  /** Stop for good: socket, heartbeat and every timer. */
  stop() {
    this.ws.close();
    this.timers.clear();
    this.joined = false;
  }

  /** The call on this page ended: close once nothing is left unsent. */
  closeWhenSaved() {
    this.closing = true;
    if (!this.client.outstanding) this.stop();
  }

  sendMsg(m) {
    if (this.joined) this.ws.send(m);
  }

  onMessage(m) {
    if (this.composing && (m.type === "op" || m.type === "snapshot")) {
      this.held.push(m);
      return;
    }
    try {
      this.handle(m);
    } catch (err) {
      // Out of order (should not happen): rejoin from our revision, which refills the gap.
      this.show("error");
      this.ws.drop();
    }
  }

  flushHeld() {
    const held = this.held;
    this.held = [];
    held.forEach((m) => this.handle(m));
  }

  handle(m) {
    if (m.type === "snapshot") {
      this.client = new Client(this.client.clientId, m.text, m.rev);
      this.text.value = m.text;
      this.fresh = false;
    } else if (m.type === "op") {
      const r = this.client.receive(m);
      if (r.applied) this.applyRemote(r.applied);
      if (r.send) this.sendMsg(r.send);
      this.updateStatus();
      if (this.closing && !this.client.outstanding) this.stop();
    } else if (m.type === "ready") {
      this.joined = true;
      this.frozen = !!m.frozen;
      const pending = this.client.pending();
      if (pending) this.ws.send(pending); // resent with the same seq: idempotent
      this.updateStatus();
    } else if (m.type === "presence") {
      this.peers[m.client] = { user: m.user, typing: !!m.typing, cursor: m.cursor, at: Date.now() };
      this.renderPeers();
    } else if (m.type === "leave") {
      delete this.peers[m.client];
      this.renderPeers();
    } else if (m.type === "error") {
      if (m.code === "unknown_message") return;
      // Signed meanwhile, or out of step (a bug): start again from the server's text.
      this.frozen = m.code === "note_frozen";
      this.client = new Client(this.client.clientId, "", 0);
      this.fresh = true;
      this.show(this.frozen ? "frozen" : "error");
      this.ws.drop();
    }
  }

  updateStatus() {
    if (this.frozen) return this.show("frozen");
    if (!this.joined) return this.show(this.client.outstanding ? "offline_pending" : "offline");
    return this.show(this.client.outstanding ? "saving" : "saved");
  }

  onInput() {
    // While an IME composition is open the text is diffed at compositionend.
    const value = this.text.value;
    if (value === this.client.doc) return;
    if (this.frozen) {
      this.text.value = this.client.doc;
      return;
    }
    const m = this.client.local(diff(this.client.doc, value));
    if (m) this.sendMsg(m);
    this.updateStatus();
    this.sendPresence(true);
  }

  applyRemote(op) {
    const t = this.text;
    const v = t.value;
    const s = cpLength(v.slice(0, t.selectionStart));
    const e = cpLength(v.slice(0, t.selectionEnd));
    const focused = document.activeElement === t;
    t.value = this.client.doc;
    if (focused) {
      const doc = this.client.doc;
      t.setSelectionRange(advance(doc, 0, transformCaret(op, s, false)), advance(doc, 0, transformCaret(op, e, false)));
    }
  }

  /* The report editor (another panel on the page) names its textarea in
     data-notes-draft-target; the selection, or all of the note, starts the draft there. */
  draft() {
    const t = this.text;
    const v = t.value;
    const target = document.getElementById(this.root.getAttribute("data-notes-draft-target") || "");
    let url = "/api/consults/" + encodeURIComponent(this.consult) + "/notes/draft";
    if (t.selectionEnd > t.selectionStart) {
      url += "?start=" + cpLength(v.slice(0, t.selectionStart)) + "&end=" + cpLength(v.slice(0, t.selectionEnd));
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => {
        if (!r.ok) throw new Error(r.status);
        return r.json();
      })
      .then((body) => {
        if (target) {
          target.value = target.value ? target.value + "\n\n" + body.text : body.text;
          target.dispatchEvent(new Event("input", { bubbles: true }));
          target.focus();
        }
        this.root.dispatchEvent(new CustomEvent("dari:note-draft", { bubbles: true, detail: body }));
      })
      .catch(() => this.show("error"));
  }

  sendPresence(typing) {
    const now = Date.now();
    if (!typing && now - (this.lastPresence || 0) < 300) return;
    if (typing && now - (this.lastTypingSent || 0) < 1000) return;
    this.lastPresence = now;
    if (typing) this.lastTypingSent = now;
    const t = this.text;
    const v = t.value;
    this.sendMsg({
      type: "presence", typing, rev: this.client.revision,
      cursor: [cpLength(v.slice(0, t.selectionStart)), cpLength(v.slice(0, t.selectionEnd))],
    });
  }

  renderPeers() {
    const now = Date.now();
    const parts = [];
    for (const id in this.peers) {
      const p = this.peers[id];
      let line = "";
      if (p.cursor) {
        const before = this.client.doc.slice(0, advance(this.client.doc, 0, p.cursor[0]));
        line = " · " + this.label("line") + " " + before.split("\n").length;
      }
      parts.push(p.user + (p.typing && now - p.at < 3000 ? " (" + this.label("typing") + ")" : "") + line);
    }
    this.presence.textContent = parts.length ? this.label("here") + ": " + parts.join(", ") : "";
  }
}
