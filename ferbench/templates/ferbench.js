/* ferbench leaderboard: sorting, filtering, head-to-head comparison and the per-sample browser.
   Plain JavaScript, no external resources; works from file://. Data comes from the pages' own
   <script type="application/json"> elements and is only ever inserted as text (never as HTML).
   Without JavaScript every page is a plain table. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function pct(value) { return value === null || value === undefined ? "—" : (100 * value).toFixed(2); }

  /* --- sortable tables: click a header; numbers sort by the cells' data-value ------------------- */
  function cellKey(cell, numeric) {
    if (!cell) { return numeric ? NaN : ""; }
    if (numeric) {
      var raw = cell.getAttribute("data-value");
      return raw === null || raw === "" ? NaN : parseFloat(raw);
    }
    return cell.textContent.trim().toLowerCase();
  }

  function sortTable(table, column, numeric, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellKey(a.cells[column], numeric), y = cellKey(b.cells[column], numeric);
      if (numeric) {
        if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }  /* missing values last */
        return descending ? y - x : x - y;
      }
      return descending ? y.localeCompare(x) : x.localeCompare(y);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (th, column) {
      th.classList.add("sort-handle");
      th.setAttribute("tabindex", "0");
      th.setAttribute("title", "sort by this column");
      function activate() {
        var numeric = th.getAttribute("data-type") === "number";
        var descending = th.getAttribute("aria-sort") === "ascending";
        Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        sortTable(table, column, numeric, descending);
      }
      th.addEventListener("click", activate);
      th.addEventListener("keydown", function (event) { if (event.key === "Enter") { activate(); } });
    });
  });

  /* --- filters: a text box and per-column selects hide the rows that do not match -------------- */
  function applyFilters(tableId) {
    var table = document.getElementById(tableId);
    if (!table) { return; }
    var text = document.querySelector(".table-filter[data-table='" + tableId + "']");
    var query = text ? text.value.trim().toLowerCase() : "";
    var selects = document.querySelectorAll(".column-filter[data-table='" + tableId + "']");
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var visible = !query || row.textContent.toLowerCase().indexOf(query) >= 0;
      Array.prototype.forEach.call(selects, function (select) {
        if (select.value && row.getAttribute("data-" + select.getAttribute("data-column")) !== select.value) {
          visible = false;
        }
      });
      row.hidden = !visible;
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll(".table-filter, .column-filter"), function (control) {
    var tableId = control.getAttribute("data-table");
    control.addEventListener(control.tagName === "SELECT" ? "change" : "input", function () { applyFilters(tableId); });
  });

  /* --- head to head: pin two entries of a board ------------------------------------------------ */
  var compare = readJson("compare-data");
  var pinned = [];

  function entryLabel(entry) { return entry.method + " / " + entry.preset + " (config " + entry.config + ")"; }

  function recallTable(a, b, classes) {
    var rows = classes.map(function (name, i) {
      var ra = a.recall[i], rb = b.recall[i];
      var diff = ra === null || rb === null ? "—" : (100 * (ra - rb)).toFixed(2);
      return el("tr", {}, [el("th", {}, [name]), el("td", {"class": "num"}, [pct(ra)]),
                           el("td", {"class": "num"}, [pct(rb)]), el("td", {"class": "num"}, [diff])]);
    });
    return el("table", {"class": "compact", "id": "compare-recall"}, [
      el("thead", {}, [el("tr", {}, [el("th", {}, ["class"]), el("th", {}, ["A recall %"]),
                                     el("th", {}, ["B recall %"]), el("th", {}, ["A − B (points)"])])]),
      el("tbody", {}, rows)]);
  }

  function confusionDifference(a, b, classes) {
    var head = el("tr", {}, [el("th", {}, ["true \\ predicted"])].concat(classes.map(function (name) {
      return el("th", {"class": "cls"}, [name]);
    })));
    var rows = classes.map(function (name, i) {
      var cells = classes.map(function (_, j) {
        var va = a.confusion[i][j], vb = b.confusion[i][j];
        if (va === null || vb === null) { return el("td", {"class": "num"}, ["—"]); }
        var diff = 100 * (va - vb);
        var good = (i === j) === (diff >= 0);  /* more on the diagonal, less off it: A better */
        var alpha = Math.min(1, Math.abs(diff) / 25).toFixed(3);
        var colour = good ? "rgba(22, 163, 74, " + alpha + ")" : "rgba(220, 38, 38, " + alpha + ")";
        return el("td", {"class": "num heat" + (i === j ? " diag" : ""), "style": "background-color: " + colour},
                  [(diff >= 0 ? "+" : "") + diff.toFixed(1)]);
      });
      return el("tr", {}, [el("th", {"class": "cls"}, [name])].concat(cells));
    });
    return el("table", {"class": "confusion", "id": "compare-confusion"}, [el("thead", {}, [head]), el("tbody", {}, rows)]);
  }

  function sampleList(id, title, winner, loser, other, data) {
    var samples = data.samples, found = [];
    for (var i = 0; i < samples.ids.length; i++) {
      if (winner.correct[i] === "1" && loser.correct[i] === "0") { found.push(i); }
    }
    var shown = found.slice(0, 50);
    var rows = shown.map(function (i) {
      var label = parseInt(samples.labels[i], 36), predWinner = parseInt(winner.pred[i], 36),
          predLoser = parseInt(loser.pred[i], 36);
      var link = function (entry) {
        return el("a", {"href": entry.samples + "#find=" + encodeURIComponent(samples.ids[i])}, [entry === winner ? title[0] : title[1]]);
      };
      return el("tr", {}, [el("td", {"class": "num"}, [String(samples.folds[i])]), el("td", {}, [el("code", {}, [samples.ids[i]])]),
                           el("td", {}, [data.classes[label] || "?"]), el("td", {}, [data.classes[predWinner] || "?"]),
                           el("td", {}, [data.classes[predLoser] || "?"]),
                           el("td", {}, [link(winner), document.createTextNode(" · "), link(loser)])]);
    });
    return el("div", {}, [
      el("h3", {}, [title[0] + " right, " + title[1] + " wrong: " + found.length + " sample(s)" +
                    (found.length > shown.length ? " (first " + shown.length + " shown)" : "")]),
      el("table", {"class": "compact", "id": id}, [
        el("thead", {}, [el("tr", {}, [el("th", {}, ["fold"]), el("th", {}, ["sample id"]), el("th", {}, ["true"]),
                                       el("th", {}, [title[0] + " predicts"]), el("th", {}, [title[1] + " predicts"]),
                                       el("th", {}, ["samples pages"])])]),
        el("tbody", {}, rows)])]);
  }

  function renderCompare() {
    var body = document.getElementById("compare-body");
    var hint = document.getElementById("compare-hint");
    if (!body || !compare) { return; }
    body.textContent = "";
    if (pinned.length < 2) { hint.hidden = false; return; }
    hint.hidden = true;
    var a = compare.entries[pinned[0]], b = compare.entries[pinned[1]];
    body.appendChild(el("p", {}, ["A: ", el("a", {"href": "#" + a.id}, [entryLabel(a)]), " — B: ",
                                  el("a", {"href": "#" + b.id}, [entryLabel(b)])]));
    body.appendChild(el("h3", {}, ["Per-class recall (pooled over runs and folds)"]));
    body.appendChild(recallTable(a, b, compare.classes));
    body.appendChild(el("h3", {}, ["Confusion matrices: A − B (row percentages, points)"]));
    body.appendChild(el("p", {"class": "hint"}, ["green: A does better (more on the diagonal, less off it), red: worse."]));
    body.appendChild(confusionDifference(a, b, compare.classes));
    if (compare.samples && a.correct && b.correct) {
      body.appendChild(sampleList("compare-a-only", ["A", "B"], a, b, null, compare));
      body.appendChild(sampleList("compare-b-only", ["B", "A"], b, a, null, compare));
    } else {
      body.appendChild(el("p", {"class": "hint"}, ["This board has " + compare.n_samples + " test samples, more than the " +
        compare.cap + " the page compares one by one; data/predictions.parquet holds them all."]));
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("input.pin"), function (box) {
    box.addEventListener("change", function () {
      var index = parseInt(box.getAttribute("data-entry"), 10);
      pinned = pinned.filter(function (other) { return other !== index; });
      if (box.checked) {
        pinned.push(index);
        if (pinned.length > 2) {
          var dropped = pinned.shift();
          var old = document.querySelector("input.pin[data-entry='" + dropped + "']");
          if (old) { old.checked = false; }
        }
      }
      Array.prototype.forEach.call(document.querySelectorAll("tr[data-entry]"), function (row) {
        row.classList.toggle("pinned", pinned.indexOf(parseInt(row.getAttribute("data-entry"), 10)) >= 0);
      });
      renderCompare();
    });
  });

  /* --- per-sample browser: filter by class, outcome and id; pages of page_rows ------------------ */
  var samples = readJson("samples-data");
  if (samples) {
    var page = 0;
    var controls = {
      trueClass: document.getElementById("true-filter"), predicted: document.getElementById("pred-filter"),
      outcome: document.getElementById("outcome-filter"), id: document.getElementById("id-filter")
    };
    var matching = function () {
      var wantTrue = controls.trueClass.value, wantPred = controls.predicted.value;
      var outcome = controls.outcome.value, query = controls.id.value.trim().toLowerCase();
      return samples.rows.filter(function (row) {
        return (wantTrue === "" || row[2] === parseInt(wantTrue, 10)) &&
               (wantPred === "" || row[3] === parseInt(wantPred, 10)) &&
               (outcome === "" || (outcome === "right") === (row[2] === row[3])) &&
               (!query || String(row[1]).toLowerCase().indexOf(query) >= 0);
      });
    };
    var render = function () {
      var rows = matching(), size = samples.page_rows;
      var pages = Math.max(1, Math.ceil(rows.length / size));
      page = Math.min(page, pages - 1);
      var body = document.getElementById("samples").tBodies[0];
      body.textContent = "";
      rows.slice(page * size, (page + 1) * size).forEach(function (row) {
        var cells = [];
        if (samples.folds) { cells.push(el("td", {"class": "num"}, [String(row[0])])); }
        cells.push(el("td", {}, [el("code", {}, [String(row[1])])]), el("td", {}, [samples.classes[row[2]]]),
                   el("td", {}, [samples.classes[row[3]]]),
                   el("td", {"class": "num"}, [row[4] === null ? "—" : row[4].toFixed(3)]));
        body.appendChild(el("tr", {"class": row[2] === row[3] ? "right" : "wrong"}, cells));
      });
      document.getElementById("sample-count").textContent = rows.length + " of " + samples.rows.length + " sample(s)";
      document.getElementById("page-label").textContent = "page " + (page + 1) + " of " + pages;
      document.getElementById("prev-page").disabled = page === 0;
      document.getElementById("next-page").disabled = page >= pages - 1;
    };
    ["trueClass", "predicted", "outcome"].forEach(function (name) {
      controls[name].addEventListener("change", function () { page = 0; render(); });
    });
    controls.id.addEventListener("input", function () { page = 0; render(); });
    document.getElementById("prev-page").addEventListener("click", function () { page -= 1; render(); });
    document.getElementById("next-page").addEventListener("click", function () { page += 1; render(); });
    var found = /[#&]find=([^&]*)/.exec(window.location.hash);
    if (found) { controls.id.value = decodeURIComponent(found[1]); }
    render();
  }
}());
