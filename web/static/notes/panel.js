/* The shared-notes panel: textarea binding, presence, and the note's socket (the shared
 * client, lib/ws-client.js, speaking the protocol of docs/notes.md). */

import { Timers } from "../lib/timers.js";
import { connect } from "../lib/ws-client.js";
import { Client, TextOperation, advance, cpLength, diff, first, transformCaret } from "./ot.js";
import { Carets } from "./carets.js";

const RENDER_PEERS_MS = 5000; // "typing" fades after a few seconds of quiet
const STORE = "dari-notes:"; // sessionStorage: this tab's unsent edits (docs/notes.md)
// Protocol-level refusals of one frame (the socket lives on; nothing to start again).
const FRAME_ERRORS = ["unknown_message", "bad_frame", "rate_limited"];

/** Forget every note's unsent edits in this tab (at logout: clinic PCs are shared). */
export function forgetUnsent() {
  try {
    for (let i = sessionStorage.length - 1; i >= 0; i--) {
      const key = sessionStorage.key(i);
      if (key && key.startsWith(STORE)) sessionStorage.removeItem(key);
    }
  } catch (e) { /* storage disabled: nothing was kept */ }
}

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
    this.storeKey = STORE + (root.getAttribute("data-notes-user") || "") + ":" + this.consult;
    this.client = new Client(randomId(), "", 0);
    this.joined = false;
    this.frozen = false;
    this.composing = false;
    this.closing = false;
    this.held = [];
    this.peers = {};
    this.fresh = true;
    this.timers = new Timers();
    this.carets = new Carets(this.text);
    this.restore();
    this.text.addEventListener("input", () => this.onInput());
    this.draftButton = root.querySelector("[data-notes-draft]");
    if (this.draftButton) this.draftButton.addEventListener("click", () => this.draft());
    this.text.addEventListener("compositionstart", () => { this.composing = true; });
    this.text.addEventListener("scroll", () => this.carets.draw(this.peers, this.client.doc));
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
      // Unsent edits cannot be carried over a snapshot (a client older than the kept
      // log): say so and keep them visible to copy, rather than claim they will be sent.
      if (this.client.outstanding) this.keepUnsent(this.client.doc);
      this.client = new Client(this.client.clientId, m.text, m.rev);
      this.text.value = m.text;
      this.fresh = false;
      this.save();
    } else if (m.type === "op" || m.type === "ack") {
      const r = this.client.receive(m);
      if (r.applied) this.applyRemote(r.applied, String(r.author));
      if (r.send) this.sendMsg(r.send);
      if (!this.client.outstanding) this.presenceSoon();
      this.save();
      this.updateStatus();
      if (this.closing && !this.client.outstanding) this.stop();
    } else if (m.type === "ready") {
      this.joined = true;
      this.frozen = !!m.frozen;
      const pending = this.client.pending();
      if (pending) this.ws.send(pending); // resent with the same seq: idempotent
      this.updateStatus();
    } else if (m.type === "presence") {
      const old = this.peers[m.client];
      let cursor = old ? old.cursor : null;
      // A cursor is a position in the note at the sender's revision, if the sender had
      // nothing unconfirmed (`sync`); placed in our text past our own unconfirmed edits.
      // Otherwise the cursor we have (moved with every edit) stays.
      if (m.cursor && m.sync && m.rev === this.client.revision) {
        cursor = m.cursor[1];
        const c = this.client;
        const mine = c.outstanding && c.buffer ? c.outstanding.compose(c.buffer) : c.outstanding;
        if (mine) cursor = transformCaret(mine, cursor, first(c.clientId, m.client));
      } else if (m.cursor && cursor === null) {
        cursor = m.cursor[1];
      }
      this.peers[m.client] = { user: m.user, typing: !!m.typing, cursor, at: Date.now() };
      this.renderPeers();
    } else if (m.type === "leave") {
      delete this.peers[m.client];
      this.renderPeers();
    } else if (m.type === "error") {
      if (FRAME_ERRORS.includes(m.code)) return;
      // Signed meanwhile, or out of step (a bug): start again from the server's text.
      if (this.client.outstanding) this.keepUnsent(this.client.doc);
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
    // While an IME composition is open nothing is sent: a half-composed syllable is not
    // text yet. The whole syllable is diffed at compositionend.
    if (this.composing) return;
    const value = this.text.value;
    if (value === this.client.doc) return;
    if (this.frozen) {
      this.text.value = this.client.doc;
      return;
    }
    const op = diff(this.client.doc, value);
    const m = this.client.local(op);
    this.movePeers(op, this.client.clientId);
    this.save();
    if (m) this.sendMsg(m);
    this.updateStatus();
    this.sendPresence(true);
  }

  applyRemote(op, author) {
    const t = this.text;
    const v = t.value;
    const s = cpLength(v.slice(0, t.selectionStart));
    const e = cpLength(v.slice(0, t.selectionEnd));
    const focused = document.activeElement === t;
    t.value = this.client.doc;
    this.movePeers(op, author);
    if (focused) {
      // The caret is where our next keystroke goes: an insertion right at it goes
      // before it iff that insertion would go first (the OT's tie-break), so our words
      // stay whole (docs/notes.md, "Non-interleaving").
      const doc = this.client.doc;
      const before = first(author, this.client.clientId);
      t.setSelectionRange(
        advance(doc, 0, transformCaret(op, s, before)),
        advance(doc, 0, transformCaret(op, e, before)),
      );
    }
  }

  /* Other people's carets move with every edit as their own next keystroke would. */
  movePeers(op, author) {
    for (const id in this.peers) {
      const p = this.peers[id];
      if (p.cursor === null || p.cursor === undefined) continue;
      p.cursor = transformCaret(op, p.cursor, id === author || first(author, id));
    }
    this.carets.draw(this.peers, this.client.doc);
  }

  /* -- unsent edits survive a reload of this tab (sessionStorage, never localStorage) -- */
  save() {
    try {
      const c = this.client;
      if (!c.outstanding) {
        sessionStorage.removeItem(this.storeKey);
        return;
      }
      sessionStorage.setItem(this.storeKey, JSON.stringify({
        client: c.clientId, rev: c.revision, doc: c.doc, seq: c.seq,
        out: c.outstanding.toJSON(), outSeq: c.outstandingSeq,
        buf: c.buffer ? c.buffer.toJSON() : null,
      }));
    } catch (e) { /* storage full or disabled: the edits stay in this page only */ }
  }

  restore() {
    let kept = null;
    try { kept = JSON.parse(sessionStorage.getItem(this.storeKey) || "null"); } catch (e) { kept = null; }
    if (!kept || typeof kept.doc !== "string" || !Array.isArray(kept.out)) return;
    try {
      const c = new Client(kept.client, kept.doc, kept.rev);
      c.seq = kept.seq;
      c.outstanding = TextOperation.fromJSON(kept.out);
      c.outstandingSeq = kept.outSeq;
      c.buffer = kept.buf ? TextOperation.fromJSON(kept.buf) : null;
      this.client = c;
    } catch (e) {
      return;
    }
    // Same client id and seq: the server recognises an operation that did arrive.
    this.text.value = this.client.doc;
    this.fresh = false;
    this.restored = true;
  }

  /* Text we could not send after all: shown to copy, never silently dropped. */
  keepUnsent(text) {
    let box = this.root.querySelector("[data-notes-unsent]");
    if (!box) {
      const p = document.createElement("p");
      p.className = "notes-unsent-label";
      p.textContent = this.label("unsent");
      box = document.createElement("textarea");
      box.readOnly = true;
      box.rows = 4;
      box.className = "notes-unsent";
      box.setAttribute("data-notes-unsent", "");
      this.text.parentNode.insertBefore(box, this.text.nextSibling);
      box.parentNode.insertBefore(p, box);
    }
    box.value = text;
    try { sessionStorage.removeItem(this.storeKey); } catch (e) { /* nothing kept */ }
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
    if (!typing && now - (this.lastPresence || 0) < 300) return this.presenceSoon();
    if (typing && now - (this.lastTypingSent || 0) < 1000) return this.presenceSoon();
    this.lastPresence = now;
    if (typing) this.lastTypingSent = now;
    const t = this.text;
    const v = t.value;
    // `sync`: nothing of ours is unconfirmed, so the cursor is a position in the note at
    // `rev` exactly, which the others can place in their own text.
    this.sendMsg({
      type: "presence", typing, rev: this.client.revision, sync: !this.client.outstanding,
      cursor: [cpLength(v.slice(0, t.selectionStart)), cpLength(v.slice(0, t.selectionEnd))],
    });
  }

  /* One more presence once things settle, so the others' view of our caret ends right. */
  presenceSoon() {
    if (this.presenceTimer) return;
    this.presenceTimer = this.timers.after(400, () => {
      this.presenceTimer = null;
      if (document.activeElement === this.text) this.sendPresence(false);
    });
  }


  renderPeers() {
    const now = Date.now();
    const parts = [];
    for (const id in this.peers) {
      const p = this.peers[id];
      let line = "";
      if (typeof p.cursor === "number") {
        const before = this.client.doc.slice(0, advance(this.client.doc, 0, p.cursor));
        line = " · " + this.label("line") + " " + before.split("\n").length;
      }
      parts.push(p.user + (p.typing && now - p.at < 3000 ? " (" + this.label("typing") + ")" : "") + line);
    }
    this.presence.textContent = parts.length ? this.label("here") + ": " + parts.join(", ") : "";
    this.carets.draw(this.peers, this.client.doc);
  }
}
