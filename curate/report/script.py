"""The report's only script: pages and filters of the duplicate-group review, in plain JS.

It reads the group data from ``<script id="review-data" type="application/json">`` (see
:func:`curate.report.review.payload`) and draws one page of groups at a time into
``#review-groups``, filtered by reason, method and score band. Every value from data goes
into the page through ``textContent`` or a ``data:image/`` ``src``, never as markup. The
state lives in the address (``#review:reason=...&method=...&band=...&page=N``), so a view can
be linked and reopened. Without script the page still shows the first page, drawn in Python.

Review: each group has a "not duplicates" button (keep every listed member) and each removed
member a "keep this one" button (keep it, remove the group's kept copy). "save overrides"
downloads ``overrides.json`` (the format ``curate override --from`` reads, stage ``dedup``),
built offline in the page; nothing is sent anywhere.
"""

PAGE_SIZE = 24

REVIEW_JS = """
(function () {
  "use strict";
  var holder = document.getElementById("review-data");
  var box = document.getElementById("review-groups");
  if (!holder || !box) return;
  var D = JSON.parse(holder.textContent);
  var PAGE = %(page)d;
  var state = {reason: -1, method: -1, band: -1, page: 1};
  var sel = {};
  var picks = {};  // id -> [action, note]: the review decisions made on this page

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function matches(g) {
    if (state.reason < 0 && state.method < 0 && state.band < 0) return true;
    var f = g[2];
    for (var i = 0; i < f.length; i++) {
      if ((state.reason < 0 || f[i][0] === state.reason) && (state.method < 0 || f[i][1] === state.method) &&
          (state.band < 0 || f[i][2] === state.band)) return true;
    }
    return false;
  }
  function note(m) {
    if (m[2] < 0) return "kept";
    var s = D.reasons[m[2]];
    if (m[3] >= 0 && s.indexOf(D.found[m[3]]) !== 0) s += " \\u00b7 " + D.found[m[3]];
    if (m[4] !== null) s += " " + m[4].toFixed(3);
    return s;
  }
  function member(m) {
    var removed = m[2] >= 0, p = m[5] >= 0 ? D.previews[m[5]] : null;
    var label = m[1] === null ? "" : " [" + m[1] + "]";
    if ((p && p[0] === "t") || (!p && D.layout === "text")) {
      var s = el("div", "snip" + (removed ? " removed" : ""));
      s.appendChild(el("div", "id", m[0] + label + " \\u00b7 " + note(m)));
      s.appendChild(document.createTextNode(p ? p[1] : "(no preview)"));
      return s;
    }
    var t = el("div", "tile" + (removed ? " removed" : ""));
    t.title = m[0];
    if (p && p[0] === "i" && p[1].indexOf("data:image/") === 0) {
      var img = el("img");
      img.alt = m[0];
      img.src = p[1];
      t.appendChild(img);
    } else {
      t.appendChild(el("div", "noimg", p ? p[1] : "no preview"));
    }
    t.appendChild(el("b", null, note(m)));
    t.appendChild(document.createTextNode(m[0] + label));
    return t;
  }
  function pick(id, action, why) {
    picks[id] = [action, why];
    var n = Object.keys(picks).length;
    document.getElementById("review-save").textContent = "save overrides (" + n + ")";
    document.getElementById("review-save").hidden = false;
  }
  function button(text, onclick) {
    var b = el("button", "pick", text);
    b.type = "button";
    b.addEventListener("click", function () { onclick(); b.disabled = true; b.textContent = text + " \u2713"; });
    return b;
  }
  function reviewed(g, m) {
    var box = el("div", "picks");
    if (m) {
      box.appendChild(button("keep this one", function () {
        pick(m[0], "keep", "kept in review (group " + g[0] + ")");
        for (var i = 0; i < g[3].length; i++) {
          if (g[3][i][2] < 0 && g[3][i][0] !== m[0]) pick(g[3][i][0], "remove", "another copy kept in review");
        }
      }));
    } else {
      box.appendChild(button("not duplicates", function () {
        for (var i = 0; i < g[3].length; i++) pick(g[3][i][0], "keep", "not duplicates (group " + g[0] + ")");
      }));
    }
    return box;
  }
  function overridesFile() {
    var rows = Object.keys(picks).sort().map(function (id) {
      return {stage: "dedup", id: id, action: picks[id][0], note: picks[id][1]};
    });
    return JSON.stringify({format: 1, overrides: rows}, null, 1);
  }
  function group(g) {
    var d = el("div", "group");
    d.setAttribute("data-group", g[0]);
    d.appendChild(el("div", "muted", "group " + g[0] + " \\u00b7 " + g[1] + " items"));
    d.appendChild(reviewed(g, null));
    var inner = el("div", D.layout === "text" ? "" : "tiles");
    for (var i = 0; i < g[3].length; i++) {
      var m = member(g[3][i]);
      if (g[3][i][2] >= 0) m.appendChild(reviewed(g, g[3][i]));
      inner.appendChild(m);
    }
    if (g[1] > g[3].length) inner.appendChild(el("div", "muted", "and " + (g[1] - g[3].length) + " more"));
    d.appendChild(inner);
    return d;
  }
  function save() {
    var parts = [];
    ["reason", "method", "band"].forEach(function (k) {
      if (state[k] >= 0) parts.push(k + "=" + encodeURIComponent(D[k + "s"][state[k]]));
    });
    if (state.page > 1) parts.push("page=" + state.page);
    try { history.replaceState(null, "", parts.length ? "#review:" + parts.join("&") : location.pathname); }
    catch (e) { /* a file: page in a strict browser: the view just is not linkable */ }
  }
  function load() {
    var h = location.hash || "";
    if (h.indexOf("#review:") !== 0) return;
    h.slice(8).split("&").forEach(function (kv) {
      var i = kv.indexOf("="), k = kv.slice(0, i), v;
      try { v = decodeURIComponent(kv.slice(i + 1)); } catch (e) { return; }
      if (k === "page") state.page = Math.max(1, parseInt(v, 10) || 1);
      else if (state.hasOwnProperty(k)) state[k] = D[k + "s"].indexOf(v);
    });
  }
  function draw() {
    var hits = [];
    for (var i = 0; i < D.groups.length; i++) if (matches(D.groups[i])) hits.push(D.groups[i]);
    var pages = Math.max(1, Math.ceil(hits.length / PAGE));
    state.page = Math.min(Math.max(1, state.page), pages);
    box.textContent = "";
    var start = (state.page - 1) * PAGE;
    for (var j = start; j < Math.min(hits.length, start + PAGE); j++) box.appendChild(group(hits[j]));
    if (!hits.length) box.appendChild(el("p", "empty", "No group matches these filters."));
    document.getElementById("review-count").textContent = hits.length.toLocaleString("en") + " of " +
      D.groups.length.toLocaleString("en") + " groups match";
    document.getElementById("review-page").textContent = "page " + state.page + " of " + pages;
    document.getElementById("review-prev").disabled = state.page <= 1;
    document.getElementById("review-next").disabled = state.page >= pages;
    box.setAttribute("data-page", state.page);
    box.setAttribute("data-matches", hits.length);
    save();
  }
  ["reason", "method", "band"].forEach(function (k) {
    var s = sel[k] = document.getElementById("review-" + k);
    s.addEventListener("change", function () { state[k] = parseInt(s.value, 10); state.page = 1; draw(); });
  });
  document.getElementById("review-prev").addEventListener("click", function () { state.page -= 1; draw(); });
  document.getElementById("review-next").addEventListener("click", function () { state.page += 1; draw(); });
  document.getElementById("review-save").addEventListener("click", function () {
    this.href = "data:application/json;charset=utf-8," + encodeURIComponent(overridesFile());
  });
  load();
  ["reason", "method", "band"].forEach(function (k) { sel[k].value = String(state[k]); });
  document.getElementById("review-controls").hidden = false;
  draw();
})();
"""


def review_js() -> str:
    return REVIEW_JS % {"page": PAGE_SIZE}
