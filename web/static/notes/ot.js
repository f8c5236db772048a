/* Shared notes: a small OT client (Jupiter model, same semantics as server/notes/ot.py,
 * which the browser tests compare it with).
 *
 * Positions and lengths count Unicode code points, never UTF-16 code units, so
 * "😀" is one character here as in Python. An operation is an array: a positive
 * number retains, a string inserts, a negative number deletes.
 * Pure: no DOM, no socket. */

function cpLength(s) {
  var n = 0;
  for (var i = 0; i < s.length; i++) {
    var c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      var d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

// UTF-16 index of the code point at position cp, counting from UTF-16 index `from`.
function advance(s, from, cp) {
  var i = from;
  while (cp > 0 && i < s.length) {
    var c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      var d = s.charCodeAt(i + 1);
      i += d >= 0xdc00 && d <= 0xdfff ? 2 : 1;
    } else {
      i += 1;
    }
    cp--;
  }
  return i;
}

function isRetain(c) { return typeof c === "number" && c > 0; }
function isDelete(c) { return typeof c === "number" && c < 0; }
function isInsert(c) { return typeof c === "string"; }

function TextOperation() {
  this.ops = [];
  this.baseLength = 0;
  this.targetLength = 0;
}

TextOperation.prototype.retain = function (n) {
  if (n === 0) return this;
  this.baseLength += n;
  this.targetLength += n;
  var last = this.ops[this.ops.length - 1];
  if (isRetain(last)) this.ops[this.ops.length - 1] += n;
  else this.ops.push(n);
  return this;
};

TextOperation.prototype.insert = function (str) {
  if (str === "") return this;
  this.targetLength += cpLength(str);
  var ops = this.ops, last = ops[ops.length - 1];
  if (isInsert(last)) {
    ops[ops.length - 1] += str;
  } else if (isDelete(last)) {
    // Inserts before deletes at the same place: one normal form, as in Python.
    if (isInsert(ops[ops.length - 2])) ops[ops.length - 2] += str;
    else ops.splice(ops.length - 1, 0, str);
  } else {
    ops.push(str);
  }
  return this;
};

TextOperation.prototype["delete"] = function (n) {
  if (n < 0) n = -n;
  if (n === 0) return this;
  this.baseLength += n;
  var last = this.ops[this.ops.length - 1];
  if (isDelete(last)) this.ops[this.ops.length - 1] -= n;
  else this.ops.push(-n);
  return this;
};

TextOperation.fromJSON = function (ops) {
  var o = new TextOperation();
  for (var i = 0; i < ops.length; i++) {
    var c = ops[i];
    if (isRetain(c)) o.retain(c);
    else if (isDelete(c)) o["delete"](c);
    else if (isInsert(c) && c !== "") o.insert(c);
    else throw new Error("invalid component");
  }
  return o;
};

TextOperation.prototype.toJSON = function () { return this.ops.slice(); };

TextOperation.prototype.apply = function (doc) {
  if (cpLength(doc) !== this.baseLength) throw new Error("operation does not fit the document");
  var parts = [], i = 0;
  for (var k = 0; k < this.ops.length; k++) {
    var c = this.ops[k];
    if (isInsert(c)) parts.push(c);
    else if (isRetain(c)) { var j = advance(doc, i, c); parts.push(doc.slice(i, j)); i = j; }
    else i = advance(doc, i, -c);
  }
  return parts.join("");
};

// A cursor over components that splits them in code points.
function Walker(ops) { this.ops = ops; this.i = 0; this.off = 0; }
Walker.prototype.cur = function () { return this.ops[this.i]; };
Walker.prototype.done = function () { return this.i >= this.ops.length; };
Walker.prototype.full = function () {
  var c = this.cur();
  return isInsert(c) ? cpLength(c) : Math.abs(c);
};
Walker.prototype.len = function () { return this.full() - this.off; };
Walker.prototype.peekStr = function (n) {
  var c = this.cur(), a = advance(c, 0, this.off);
  return c.slice(a, advance(c, a, n));
};
Walker.prototype.takeStr = function () {
  var s = this.peekStr(this.len());
  this.i++; this.off = 0;
  return s;
};
Walker.prototype.takeAll = function () { var n = this.len(); this.i++; this.off = 0; return n; };
Walker.prototype.skip = function (n) {
  this.off += n;
  if (this.off >= this.full()) { this.i++; this.off = 0; }
};

TextOperation.prototype.compose = function (other) {
  if (this.targetLength !== other.baseLength) throw new Error("compose: lengths differ");
  var r = new TextOperation(), a = new Walker(this.ops), b = new Walker(other.ops);
  while (!(a.done() && b.done())) {
    if (isDelete(a.cur())) { r["delete"](a.takeAll()); continue; }
    if (isInsert(b.cur())) { r.insert(b.takeStr()); continue; }
    if (a.done() || b.done()) throw new Error("compose: operations do not fit");
    var n = Math.min(a.len(), b.len());
    if (isRetain(a.cur()) && isRetain(b.cur())) r.retain(n);
    else if (isInsert(a.cur()) && isRetain(b.cur())) r.insert(a.peekStr(n));
    else if (isRetain(a.cur()) && isDelete(b.cur())) r["delete"](n);
    a.skip(n); b.skip(n);
  }
  return r;
};

// Whose insertion goes left when two clients insert at the same place: the lower id
// (as server/notes/ot.py's `first`; ids are ASCII, so < compares as Python does).
function first(client, other) { return client < other; }

// [a', b'] for concurrent a and b; on a tie a's insertion goes first iff aFirst
// (default true).
TextOperation.transform = function (a, b, aFirst) {
  if (aFirst === undefined) aFirst = true;
  if (a.baseLength !== b.baseLength) throw new Error("transform: different documents");
  var ap = new TextOperation(), bp = new TextOperation();
  var x = new Walker(a.ops), y = new Walker(b.ops);
  while (!(x.done() && y.done())) {
    if (isInsert(x.cur()) && (aFirst || !isInsert(y.cur()))) {
      var s = x.takeStr(); ap.insert(s); bp.retain(cpLength(s)); continue;
    }
    if (isInsert(y.cur())) { var t = y.takeStr(); ap.retain(cpLength(t)); bp.insert(t); continue; }
    if (x.done() || y.done()) throw new Error("transform: operations do not fit");
    var n = Math.min(x.len(), y.len());
    if (isRetain(x.cur()) && isRetain(y.cur())) { ap.retain(n); bp.retain(n); }
    else if (isDelete(x.cur()) && isRetain(y.cur())) ap["delete"](n);
    else if (isRetain(x.cur()) && isDelete(y.cur())) bp["delete"](n);
    x.skip(n); y.skip(n);
  }
  return [ap, bp];
};

// The operation turning `before` into `after` (common prefix and suffix kept).
function diff(before, after) {
  var start = 0, limit = Math.min(before.length, after.length);
  while (start < limit && before.charCodeAt(start) === after.charCodeAt(start)) start++;
  // Never split a surrogate pair.
  if (start > 0 && (before.charCodeAt(start - 1) & 0xfc00) === 0xd800) start--;
  var end = 0;
  while (end < limit - start &&
    before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)) end++;
  if (end > 0 && (before.charCodeAt(before.length - end) & 0xfc00) === 0xdc00) end--;
  var op = new TextOperation().retain(cpLength(before.slice(0, start)));
  op.insert(after.slice(start, after.length - end));
  op["delete"](cpLength(before.slice(start, before.length - end)));
  return op.retain(cpLength(before.slice(before.length - end)));
}

// Where a caret (code points) ends up after an operation. The caret is where its
// writer's next keystroke goes, so an insertion exactly at the caret goes before it iff
// `before` = first(op's author, caret's writer), as transform orders that keystroke
// (true for the writer's own). Tie-break and caret agree: runs never interleave
// (docs/notes.md, "Non-interleaving"); server/notes/ot.py's transform_caret.
function transformCaret(op, index, before) {
  var pos = 0, out = index;
  for (var k = 0; k < op.ops.length && pos <= index; k++) {
    var c = op.ops[k];
    if (isInsert(c)) { if (pos < index || before) out += cpLength(c); }
    else if (isRetain(c)) pos += c;
    else { out -= Math.min(index - pos, -c); pos += -c; }
  }
  return out;
}

TextOperation.prototype.isNoop = function () {
  return this.ops.length === 0 || (this.ops.length === 1 && isRetain(this.ops[0]));
};

/* The client state machine: synchronized, awaiting confirm, awaiting with buffer. */
function Client(clientId, doc, revision) {
  this.clientId = clientId;
  this.doc = doc || "";
  this.revision = revision || 0;
  this.seq = 0;
  this.outstanding = null;
  this.outstandingSeq = 0;
  this.buffer = null;
}
Client.prototype.state = function () {
  if (!this.outstanding) return "synchronized";
  return this.buffer ? "awaiting_with_buffer" : "awaiting_confirm";
};
Client.prototype.local = function (op) {
  this.doc = op.apply(this.doc);
  if (op.isNoop()) return null;
  if (!this.outstanding) return this.send(op);
  this.buffer = this.buffer ? this.buffer.compose(op) : op;
  return null;
};
Client.prototype.send = function (op) {
  this.seq += 1;
  this.outstanding = op;
  this.outstandingSeq = this.seq;
  return this.pending();
};
Client.prototype.pending = function () {
  if (!this.outstanding) return null;
  return { type: "op", rev: this.revision, seq: this.outstandingSeq, op: this.outstanding.toJSON() };
};
Client.prototype.acked = function () {
  this.outstanding = null;
  var b = this.buffer;
  this.buffer = null;
  return b && !b.isNoop() ? this.send(b) : null;
};
// Returns {send: message|null, applied: op|null, author} for one server update in order.
// An "ack" says our operation became empty (what it deleted was deleted meanwhile).
Client.prototype.receive = function (m) {
  if (m.type === "ack") {
    if (!this.outstanding || m.seq !== this.outstandingSeq) return { send: null, applied: null };
    if (m.rev > this.revision) throw new Error("gap in revisions");
    if (!this.outstanding.isNoop()) throw new Error("acknowledged as empty, but it is not");
    return { send: this.acked(), applied: null };
  }
  if (m.rev <= this.revision) return { send: null, applied: null };
  if (m.rev !== this.revision + 1) throw new Error("gap in revisions");
  this.revision = m.rev;
  if (m.client === this.clientId && m.seq === this.outstandingSeq && this.outstanding) {
    return { send: this.acked(), applied: null };
  }
  var op = TextOperation.fromJSON(m.op), mine = first(this.clientId, String(m.client));
  if (this.outstanding) {
    var p = TextOperation.transform(this.outstanding, op, mine);
    this.outstanding = p[0]; op = p[1];
    if (this.buffer) { var q = TextOperation.transform(this.buffer, op, mine); this.buffer = q[0]; op = q[1]; }
  }
  this.doc = op.apply(this.doc);
  return { send: null, applied: op, author: m.client };
};

export { Client, TextOperation, advance, cpLength, diff, first, transformCaret };
