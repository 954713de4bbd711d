// Runs the report's review script under a minimal DOM in node, clicks review buttons, prints the saved file.
// usage: node review_dom.js SCRIPT.js DATA.json CLICKS.json   (CLICKS: [[group number, button text], ...])
"use strict";
const fs = require("fs");
const vm = require("vm");
const [script, data, clicks] = process.argv.slice(2).map((p) => fs.readFileSync(p, "utf8"));

class El {
  constructor(tag) { this.tagName = tag; this.children = []; this.attrs = {}; this.listeners = {}; this._text = ""; }
  appendChild(c) { this.children.push(c); return c; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  addEventListener(type, f) { (this.listeners[type] = this.listeners[type] || []).push(f); }
  click() { (this.listeners.click || []).forEach((f) => f.call(this, {})); }
  set textContent(v) { this._text = String(v); this.children = []; }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
}
const byId = {};
for (const id of ["review-groups", "review-count", "review-page", "review-prev", "review-next", "review-controls",
                  "review-save", "review-reason", "review-method", "review-band"]) byId[id] = new El("x");
byId["review-data"] = new El("script");
byId["review-data"]._text = data;
const document = {
  getElementById: (id) => byId[id] || null,
  createElement: (tag) => new El(tag),
  createTextNode: (text) => { const e = new El("#text"); e._text = String(text); return e; },
};
vm.runInNewContext(script, {document, history: {replaceState() {}}, location: {hash: "", pathname: "/r.html"}});

const all = (e, out = []) => { out.push(e); e.children.forEach((c) => all(c, out)); return out; };
for (const [group, text] of JSON.parse(clicks)) {
  const box = all(byId["review-groups"]).find((e) => e.attrs["data-group"] === String(group));
  all(box).find((e) => e.tagName === "button" && e._text === text).click();
}
const save = byId["review-save"];
save.click();
process.stdout.write(JSON.stringify({hidden: !!save.hidden, label: save.textContent,
                                     file: decodeURIComponent(save.href.slice(save.href.indexOf(",") + 1))}));
