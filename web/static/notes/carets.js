/* Other people's carets, drawn in the note where they are typing, with their name.
 *
 * A textarea cannot hold markup, so a layer over it holds one marker per person, placed
 * by measuring a hidden mirror: a div with the textarea's font, padding and wrapping,
 * holding the text up to the caret and a span where the caret is. */

const COPIED = [
  "boxSizing", "width", "fontFamily", "fontSize", "fontWeight", "fontStyle", "letterSpacing",
  "lineHeight", "paddingTop", "paddingRight", "paddingBottom", "paddingLeft",
  "borderTopWidth", "borderRightWidth", "borderBottomWidth", "borderLeftWidth",
  "textTransform", "wordSpacing", "tabSize",
];

function colourOf(id) {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % 6;
}

export class Carets {
  constructor(textarea) {
    this.text = textarea;
    const wrap = document.createElement("div");
    wrap.className = "notes-editor";
    textarea.parentNode.insertBefore(wrap, textarea);
    wrap.appendChild(textarea);
    this.layer = document.createElement("div");
    this.layer.className = "notes-carets";
    this.layer.setAttribute("aria-hidden", "true");
    wrap.appendChild(this.layer);
    this.mirror = document.createElement("div");
    this.mirror.className = "notes-mirror";
    this.mirror.setAttribute("aria-hidden", "true");
    wrap.appendChild(this.mirror);
    this.marks = {};
  }

  /** Place a marker for every peer with a caret (code points into `doc`). */
  draw(peers, doc) {
    const seen = {};
    for (const id in peers) {
      const p = peers[id];
      if (typeof p.cursor !== "number") continue;
      seen[id] = true;
      let mark = this.marks[id];
      if (!mark) {
        mark = document.createElement("span");
        mark.className = "notes-caret notes-caret-" + colourOf(id);
        mark.setAttribute("data-notes-caret", id);
        const name = document.createElement("span");
        name.className = "notes-caret-name";
        mark.appendChild(name);
        this.layer.appendChild(mark);
        this.marks[id] = mark;
      }
      mark.firstChild.textContent = p.user;
      this.place(mark, doc, p.cursor);
    }
    for (const id in this.marks) {
      if (!seen[id]) {
        this.marks[id].remove();
        delete this.marks[id];
      }
    }
  }

  place(mark, doc, cursor) {
    const t = this.text;
    const style = getComputedStyle(t);
    const m = this.mirror;
    for (const k of COPIED) m.style[k] = style[k];
    m.style.width = t.clientWidth + parseFloat(style.borderLeftWidth) + parseFloat(style.borderRightWidth) + "px";
    // Code points to UTF-16 index (never inside a surrogate pair).
    let i = 0, n = cursor;
    while (n > 0 && i < doc.length) {
      const c = doc.charCodeAt(i);
      i += c >= 0xd800 && c <= 0xdbff && i + 1 < doc.length ? 2 : 1;
      n--;
    }
    m.textContent = doc.slice(0, i);
    const spot = document.createElement("span");
    spot.textContent = "\u200b";
    m.appendChild(spot);
    const top = spot.offsetTop - t.scrollTop;
    const left = spot.offsetLeft - t.scrollLeft;
    const visible = top >= 0 && top < t.clientHeight;
    mark.hidden = !visible;
    mark.style.top = top + "px";
    mark.style.left = left + "px";
    mark.style.height = spot.offsetHeight + "px";
    mark.setAttribute("data-index", String(cursor));
  }
}
