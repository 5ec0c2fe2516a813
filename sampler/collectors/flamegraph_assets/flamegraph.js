/*
 * heatline flame graph viewer. Plain JavaScript, no dependencies, no build step.
 *
 * Input: the JSON in <script type="application/json" id="heatline-data">, as written by
 * sampler/collectors/flamegraph.py (`flamegraph_data`) or diff_flamegraph.py
 * (`diff_flamegraph_data`): a frame table and the call tree as parallel columns in pre-order.
 * The UI is built inside #heatline-root (else <body>) and draws on one <canvas>: only frames at
 * least one pixel wide at the current zoom are laid out, and drawing happens on demand (a state
 * change, a scroll, a resize), so profiles with hundreds of thousands of nodes stay responsive.
 *
 * Security: no inline event handlers, no eval / new Function / string timers, no innerHTML:
 * text from the profile only ever reaches the page through textContent and the canvas. The same
 * file runs unchanged in a VS Code webview under
 * `default-src 'none'; script-src 'nonce-...'; style-src ...` (style changes use the CSSOM).
 *
 * Embedded (a VS Code webview, where acquireVsCodeApi exists, or any iframe), a click on a frame
 * also posts {type: "open", file, line} to the host: through window.heatlineHost.postMessage if
 * the host page set one (for webviews that already called acquireVsCodeApi), else
 * acquireVsCodeApi().postMessage, else window.parent.postMessage(message, "*").
 *
 * Keyboard: "/" focuses the search box, Escape resets the zoom.
 *
 * --async-aware profiles hold asyncio task markers (file index -2; named "<task> NAME"): they
 * are drawn in the task colour with a stripe (the stripe alone in a diff, whose colours are the
 * change), their tooltip says "asyncio task", searching "<task>" finds them all, and the sidebar
 * lists the tasks by their share of the samples.
 *
 * --opcodes profiles carry per-node instruction counts (D.opcodes, per thread in
 * thread_values[tid].opcodes) and names for the target's version (D.opcode_mapping): a frame's
 * tooltip lists its instructions, specialized ones with their base instruction. `<native>`
 * frames (--native) are drawn like `<GC>`, by name, with no file.
 *
 * window.heatline, a small API for tests and hosts (frozen; it never exposes the data itself):
 *   version                  1
 *   kind                     "flamegraph" or "diff"
 *   visibleFrames()          the frames laid out now (at least a pixel wide), root first:
 *                            [{name, funcname, file, module, line, task, value, self, share, depth,
 *                              x, y, width, height, onScreen, matched, ancestor, zoomRoot,
 *                              status ("", "new", "gone"), baseline, baselineTotal, diff,
 *                              diffPct}]; x/y/width/height are viewport CSS pixels, so a
 *                            caller can click the centre of a frame; share is value / all
 *                            samples of the current view (thread filter applied).
 *   root()                   the zoomed-in frame, in the same shape ("all" when not zoomed)
 *   search(text)             sets the search box; returns {text, frames, samples, share}
 *   zoomTo(name)             zooms to the heaviest frame whose name ("func (file:line)") or
 *                            else function name equals `name`; returns whether one was found
 *   focus({funcname, filename}) zooms to the heaviest frame of that function (filename
 *                            optional); returns whether one was found. The data's optional
 *                            `focus` member (same shape) is applied this way on load.
 *   back(), reset()          one zoom step back (returns false at the top); show everything
 *   state()                  {zoom, inverted, thread, theme, labels, search, matchShare,
 *                             matchSamples, showGone, diffBy, embedded}
 *   threads()                [{id, name, samples}] of the profile
 *   tooltipText()            the tooltip's text while one is shown, else ""
 *   lastRender()             {ms, layoutMs, frames}: the last draw's time and frame count
 *   setInverted(on), setThread(id | null), setTheme("light" | "dark"),
 *   setLabels("file" | "module"), setShowGone(on), setDiffBy("total" | "self")
 *                            the toolbar's controls, for hosts
 * The page also dispatches a "heatline:open" CustomEvent on document with {file, line} whenever
 * a frame is clicked, embedded or not.
 */
(function () {
  "use strict";

  var ROW = 18; // px per stack level
  var MIN_WIDTH = 1; // frames narrower than this (CSS px) at the current zoom are not drawn
  var HEAT_STEPS = [0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.5]; // share of samples -> heat 0..7
  var STATUS_NAMES = ["", "new", "gone"];
  var SAME = 0, NEW = 1, GONE = 2;
  var TASK_FILE = -2; // an asyncio task's marker (flamegraph.py's TASK_FILE)
  var TASK_STRIPE = 3; // px: the band drawn at a task's left edge
  var THEME_KEY = "heatline.theme";
  var LABELS_KEY = "heatline.labels";
  var DIFF_BY_KEY = "heatline.diffBy";

  var doc = document;
  var dataElement = doc.getElementById("heatline-data");
  var mount = doc.getElementById("heatline-root") || doc.body;

  // -- small helpers ----------------------------------------------------------------------------

  function el(tag, props, children) {
    var node = doc.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        var value = props[key];
        if (value === undefined || value === null || value === false) return;
        if (key === "text") node.textContent = String(value);
        else if (key === "className") node.className = value;
        else if (key === "hidden") node.hidden = true;
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) node.appendChild(child);
    });
    return node;
  }

  function clearNode(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function safeGet(key) {
    try {
      return window.localStorage ? window.localStorage.getItem(key) : null;
    } catch (err) {
      return null; // storage disabled (sandboxed webview, file:// policy, private mode)
    }
  }

  function safeSet(key, value) {
    try {
      if (window.localStorage) window.localStorage.setItem(key, value);
    } catch (err) {
      /* not remembered, still applied */
    }
  }

  var numberFormat = typeof Intl !== "undefined" ? new Intl.NumberFormat("en-US") : null;
  function fmtInt(n) {
    n = Math.round(n);
    return numberFormat ? numberFormat.format(n) : String(n);
  }
  function fmtNum(n, digits) {
    if (!isFinite(n)) return String(n);
    var rounded = Math.round(n);
    if (Math.abs(n - rounded) < 1e-9) return fmtInt(rounded);
    return n.toFixed(digits === undefined ? 1 : digits);
  }
  function fmtPct(p, digits) {
    return (isFinite(p) ? p.toFixed(digits === undefined ? 1 : digits) : "0") + "%";
  }
  function signed(n, text) {
    return (n > 0 ? "+" : n < 0 ? "\u2212" : "\u00b1") + text;
  }
  function fmtSeconds(s) {
    if (!isFinite(s) || s <= 0) return "0 s";
    if (s >= 1) return s.toFixed(s >= 100 ? 0 : 2) + " s";
    if (s >= 0.001) return (s * 1e3).toFixed(1) + " ms";
    return (s * 1e6).toFixed(0) + " \u00b5s";
  }
  function basename(path) {
    var parts = String(path).split(/[\\/]/);
    return parts[parts.length - 1] || path;
  }

  // -- data -------------------------------------------------------------------------------------

  var D = null;
  var loadError = null;
  try {
    D = JSON.parse(dataElement ? dataElement.textContent : "null");
    if (!D || !D.nodes || !D.frames) throw new Error("no flame graph data in this page");
  } catch (err) {
    loadError = err;
  }

  if (loadError) {
    clearNode(mount);
    mount.appendChild(el("p", { className: "hl-empty", text: "heatline: cannot read the profile data (" + loadError.message + ")" }));
    return;
  }

  var isDiff = D.kind === "diff";
  var files = D.files || [];
  var SOURCE_CONTEXT = 2;

  // Frames, from the columns: a diff's frames stand for whole functions (no line in the name).
  var frames = (function () {
    var cols = D.frames;
    var n = cols.funcname.length;
    var out = new Array(n);
    for (var i = 0; i < n; i++) {
      var fileIndex = cols.file[i];
      var file = fileIndex >= 0 ? files[fileIndex] : null;
      var funcname = String(cols.funcname[i]);
      var line = cols.line[i];
      var task = fileIndex === TASK_FILE;
      var name = task ? "<task> " + funcname : !file ? funcname : isDiff ? funcname + " (" + file.short + ")" : funcname + " (" + file.short + ":" + line + ")";
      out[i] = {
        name: name,
        funcname: funcname,
        fileIndex: fileIndex,
        filename: task ? "<task>" : file ? String(file.filename) : "~",
        module: file ? String(file.module) : "",
        line: line,
        synthetic: !file,
        task: task,
      };
    }
    return out;
  })();

  function sourceOf(fr) {
    var file = fr.fileIndex >= 0 ? files[fr.fileIndex] : null;
    var lines = [];
    if (!file || !file.source) return lines;
    for (var n = fr.line - SOURCE_CONTEXT; n <= fr.line + SOURCE_CONTEXT; n++) {
      var text = file.source[String(n)];
      if (typeof text === "string") lines.push([n, text]);
    }
    return lines;
  }
  var stats = D.stats || {};
  var intervalUs = stats.sample_interval_usec || 1000;

  // The base tree, built once from the columns.
  var baseNodes = (function () {
    var cols = D.nodes;
    var n = cols.frame.length;
    var out = new Array(n);
    for (var i = 0; i < n; i++) {
      var node = {
        i: i,
        f: cols.frame[i],
        v: cols.value[i],
        s: cols.self[i],
        st: isDiff ? cols.status[i] : SAME,
        b: isDiff ? cols.baseline[i] : 0, // baseline self (scaled)
        bt: isDiff ? cols.baseline_total[i] : 0, // baseline total (scaled)
        tv: null,
        parent: null,
        kids: [],
      };
      out[i] = node;
      var p = cols.parent[i];
      if (p >= 0) {
        node.parent = out[p];
        out[p].kids.push(node);
      }
    }
    var tvs = D.thread_values || {};
    Object.keys(tvs).forEach(function (tid) {
      var column = tvs[tid];
      for (var k = 0; k < column.node.length; k++) {
        var target = out[column.node[k]];
        if (!target.tv) target.tv = Object.create(null);
        target.tv[tid] = [column.value[k], column.self[k]];
      }
      var ops = column.opcodes;
      for (var q = 0; ops && q < ops.node.length; q++) {
        var at = out[ops.node[q]];
        if (!at.tops) at.tops = Object.create(null);
        at.tops[tid] = ops.counts[q];
      }
    });
    var opcodes = D.opcodes;
    for (var o = 0; opcodes && o < opcodes.node.length; o++) out[opcodes.node[o]].ops = opcodes.counts[o];
    return out;
  })();
  var baseRoot = baseNodes[0];

  var threadList = (D.threads || []).map(function (t) {
    return { id: String(t.id), name: t.name || null, samples: t.samples || 0, main: !!t.main };
  });
  var hasThreadFilter = Object.keys(D.thread_values || {}).length > 1;

  // -- state ------------------------------------------------------------------------------------

  var embedded = typeof window.acquireVsCodeApi === "function" || !!window.heatlineHost || window.parent !== window;
  var state = {
    inverted: false,
    thread: null, // thread id (string) or null for all
    labels: safeGet(LABELS_KEY) === "module" ? "module" : "file",
    theme: null,
    search: "",
    showGone: false,
    diffBy: safeGet(DIFF_BY_KEY) === "self" ? "self" : "total",
  };

  var view = null; // {root, order: pre-order view nodes}
  var zoom = null; // the view node zoomed into
  var history = []; // earlier zoom nodes, for Back
  var rows = []; // rows[depth] = rects in x order
  var rects = []; // every laid-out rect, pre-order
  var contentHeight = 0;
  var match = { frames: 0, samples: 0, share: 0 };
  var hovered = null;
  var render = { ms: 0, layoutMs: 0, frames: 0 };
  var colors = {};
  var charWidth = 7;

  // -- UI skeleton ------------------------------------------------------------------------------

  var ui = {};
  (function buildUi() {
    clearNode(mount);
    ui.title = el("h1", { className: "hl-title" }, [
      el("span", { className: "hl-brand", text: "heatline " }),
      doc.createTextNode(isDiff ? "differential flame graph" : "flame graph"),
    ]);
    if (D.title) ui.title.setAttribute("title", D.title);
    ui.search = el("input", {
      type: "search",
      id: "hl-search",
      placeholder: "Search function, file or file:line  ( / )",
      autocomplete: "off",
      spellcheck: "false",
      "aria-label": "Search frames",
    });
    ui.match = el("span", { className: "hl-match", id: "hl-match", "aria-live": "polite" });
    ui.back = el("button", { type: "button", id: "hl-back", title: "Zoom out one step", text: "Back" });
    ui.reset = el("button", { type: "button", id: "hl-reset", title: "Show everything (Escape)", text: "Reset zoom" });
    ui.thread = el("select", { id: "hl-thread", "aria-label": "Thread" });
    ui.threadWrap = el("label", { id: "hl-thread-wrap", hidden: !hasThreadFilter }, [doc.createTextNode("Thread"), ui.thread]);
    ui.invert = el("button", {
      type: "button",
      id: "hl-invert",
      "aria-pressed": "false",
      title: "Inverted (icicle) view: the functions that ran at the root, their callers below",
      text: "Inverted",
    });
    ui.labels = el("button", { type: "button", id: "hl-labels", "aria-pressed": "false", title: "Show module names instead of file paths", text: "Module names" });
    ui.gone = el("button", {
      type: "button",
      id: "hl-gone",
      "aria-pressed": "false",
      hidden: !isDiff,
      title: "Also draw the call paths only the baseline has",
      text: "Show disappeared",
    });
    ui.diffBy = el("button", {
      type: "button",
      id: "hl-diffby",
      hidden: !isDiff,
      title: "Colour by the change in total time (callees included) or in self time",
      text: "Colour: total",
    });
    ui.sidebarToggle = el("button", { type: "button", id: "hl-sidebar-toggle", "aria-pressed": "true", title: "Show or hide the run statistics", text: "Stats" });
    ui.theme = el("button", { type: "button", id: "hl-theme", title: "Switch between light and dark", text: "Dark theme" });

    ui.canvas = el("canvas", { id: "hl-canvas" });
    ui.spacer = el("div", { id: "hl-spacer" });
    ui.empty = el("p", { className: "hl-empty", id: "hl-empty", hidden: true, text: "No samples were collected." });
    ui.chart = el("div", { className: "hl-chart", id: "hl-chart", tabindex: "0", "aria-label": "Flame graph" }, [ui.canvas, ui.spacer, ui.empty]);
    ui.sidebar = el("aside", { className: "hl-sidebar", id: "hl-sidebar", "aria-label": "Run statistics" });
    ui.status = el("footer", { className: "hl-status", id: "hl-status" });
    ui.tooltip = el("div", { className: "hl-tooltip", id: "hl-tooltip", role: "tooltip", hidden: true });

    var toolbar = el("header", { className: "hl-toolbar", id: "hl-toolbar" }, [
      ui.title,
      el("div", { className: "hl-search" }, [ui.search, ui.match]),
      el("div", { className: "hl-controls" }, [ui.back, ui.reset, ui.threadWrap, ui.invert, ui.labels, ui.gone, ui.diffBy, ui.sidebarToggle, ui.theme]),
    ]);
    mount.appendChild(
      el("div", { className: "hl-app", id: "hl-app" }, [
        toolbar,
        el("main", { className: "hl-main", id: "hl-main" }, [ui.chart, ui.sidebar]),
        ui.status,
      ])
    );
    doc.body.appendChild(ui.tooltip);

    ui.thread.appendChild(el("option", { value: "", text: "All threads" }));
    threadList.forEach(function (t) {
      var label = (t.name ? t.name + " " : "Thread ") + "(" + t.id + ")" + (t.main ? " main" : "");
      ui.thread.appendChild(el("option", { value: t.id, text: label }));
    });
    ui.ctx = ui.canvas.getContext("2d");
  })();

  // -- theme and colours ------------------------------------------------------------------------

  function readColors() {
    var style = getComputedStyle(doc.documentElement);
    function v(name) {
      return style.getPropertyValue(name).trim() || "#888888";
    }
    colors = {
      bg: v("--bg"),
      fg: v("--fg"),
      heat: [0, 1, 2, 3, 4, 5, 6, 7].map(function (i) {
        return v("--heat-" + i);
      }),
      match: v("--match"),
      gc: v("--gc"),
      task: v("--task"),
      taskEdge: v("--task-edge"),
      neutral: v("--diff-neutral"),
      grow: [v("--grow-1"), v("--grow-2"), v("--grow-3")],
      shrink: [v("--shrink-1"), v("--shrink-2"), v("--shrink-3")],
      fresh: v("--new"),
      gone: v("--gone"),
      textDark: v("--text-dark"),
      textLight: v("--text-light"),
      mono: v("--mono"),
    };
    colors.textOn = Object.create(null);
  }

  function textColorOn(fill) {
    var cached = colors.textOn[fill];
    if (cached) return cached;
    var r = 128, g = 128, b = 128;
    var m = /^#([0-9a-f]{6})$/i.exec(fill);
    if (m) {
      var n = parseInt(m[1], 16);
      r = (n >> 16) & 255;
      g = (n >> 8) & 255;
      b = n & 255;
    }
    var luminance = (0.299 * r + 0.587 * g + 0.114 * b) / 255;
    var text = luminance > 0.55 ? colors.textDark : colors.textLight;
    colors.textOn[fill] = text;
    return text;
  }

  function applyTheme(theme, remember) {
    state.theme = theme === "dark" ? "dark" : "light";
    doc.documentElement.setAttribute("data-theme", state.theme);
    ui.theme.textContent = state.theme === "dark" ? "Light theme" : "Dark theme";
    if (remember) safeSet(THEME_KEY, state.theme);
    readColors();
    measureFont();
  }

  function initialTheme() {
    var stored = safeGet(THEME_KEY);
    if (stored === "dark" || stored === "light") return stored;
    if (window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches) return "dark";
    return "light";
  }

  function measureFont() {
    ui.ctx.font = "12px " + colors.mono;
    charWidth = ui.ctx.measureText("MMMMMMMMMM").width / 10 || 7;
  }

  // -- the view tree ----------------------------------------------------------------------------
  // View nodes: {base, f, v, s, lv, b, bt, st, parent, kids, depth, matched}. v/s are this
  // run's total/self under the thread filter, lv the width used for layout (v, plus the
  // baseline's share of disappeared paths when they are shown), b/bt the baseline's self/total.

  function makeViewNode(base, f, parent) {
    return { base: base, f: f, v: 0, s: 0, lv: 0, b: 0, bt: 0, st: SAME, parent: parent, kids: [], matched: false };
  }

  function valuesOf(node) {
    if (state.thread === null) return [node.v, node.s];
    var t = node.tv && node.tv[state.thread];
    return t ? t : null;
  }

  function buildNormalView() {
    var rootValues = valuesOf(baseRoot) || [0, 0];
    var root = makeViewNode(baseRoot, -1, null);
    root.v = rootValues[0];
    root.s = rootValues[1];
    root.b = baseRoot.b;
    root.bt = baseRoot.bt;
    var order = [root];
    var todo = [[baseRoot, root]];
    while (todo.length) {
      var pair = todo.pop();
      var from = pair[0], to = pair[1];
      for (var k = 0; k < from.kids.length; k++) {
        var child = from.kids[k];
        if (child.st === GONE && !state.showGone) continue;
        var values = valuesOf(child);
        if (!values) continue;
        if (child.st !== GONE && values[0] <= 0) continue;
        var node = makeViewNode(child, child.f, to);
        node.v = values[0];
        node.s = values[1];
        node.b = child.b;
        node.bt = child.bt;
        node.st = child.st;
        to.kids.push(node);
        order.push(node);
        todo.push([child, node]);
      }
    }
    // layout widths, children before parents (reverse pre-order)
    for (var i = order.length - 1; i >= 0; i--) {
      var n = order[i];
      var extra = 0;
      for (var j = 0; j < n.kids.length; j++) extra += n.kids[j].lv - n.kids[j].v;
      n.lv = n.st === GONE ? Math.max(n.bt, extra) : n.v + extra;
    }
    sortKids(order);
    return { root: root, order: order };
  }

  function buildInvertedView() {
    var root = makeViewNode(null, -1, null);
    var rootValues = valuesOf(baseRoot) || [0, 0];
    var maps = new Map();
    maps.set(root, new Map());
    for (var i = 1; i < baseNodes.length; i++) {
      var base = baseNodes[i];
      if (base.st === GONE && !state.showGone) continue;
      var values = valuesOf(base);
      var self = values ? values[1] : 0;
      var bself = base.b;
      var gone = state.showGone && (base.st === GONE || self === 0) ? bself : 0;
      if (self <= 0 && bself <= 0) continue;
      var widen = self + gone;
      root.v += self;
      root.lv += widen;
      root.b += bself;
      var cur = root;
      for (var n = base; n && n !== baseRoot; n = n.parent) {
        var kids = maps.get(cur);
        var next = kids.get(n.f);
        if (!next) {
          next = makeViewNode(n, n.f, cur);
          kids.set(n.f, next);
          maps.set(next, new Map());
          cur.kids.push(next);
        }
        next.v += self;
        next.lv += widen;
        next.b += bself;
        if (n.ops || n.tops) (next.bases || (next.bases = new Set())).add(n);
        cur = next;
      }
      cur.s += self;
    }
    // the root holds every sample, as in the normal view (pruned frames leave a gap)
    root.lv += rootValues[0] - root.v;
    root.v = rootValues[0];
    root.b = baseRoot.b;
    // keep only what has width; mark diff status; collect pre-order
    var order = [];
    var todo = [root];
    while (todo.length) {
      var node = todo.pop();
      node.kids = node.kids.filter(function (kid) {
        return kid.lv > 0;
      });
      node.bt = node.b; // in the inverted tree a node's total is the function's own time
      if (isDiff && node !== root) node.st = node.v <= 0 ? GONE : node.b <= 0 ? NEW : SAME;
      order.push(node);
      for (var k = node.kids.length - 1; k >= 0; k--) todo.push(node.kids[k]);
    }
    sortKids(order);
    // sorting changed sibling order: redo the pre-order
    order = [];
    todo = [root];
    while (todo.length) {
      var m = todo.pop();
      order.push(m);
      for (var q = m.kids.length - 1; q >= 0; q--) todo.push(m.kids[q]);
    }
    return { root: root, order: order };
  }

  function frameName(f) {
    return f >= 0 ? frames[f].name : "all";
  }

  function sortKids(order) {
    for (var i = 0; i < order.length; i++) {
      var kids = order[i].kids;
      if (kids.length > 1) {
        kids.sort(function (a, b) {
          var ga = a.st === GONE ? 1 : 0, gb = b.st === GONE ? 1 : 0;
          if (ga !== gb) return ga - gb;
          if (b.lv !== a.lv) return b.lv - a.lv;
          var na = frameName(a.f), nb = frameName(b.f);
          return na < nb ? -1 : na > nb ? 1 : 0;
        });
      }
    }
  }

  function pathOf(node) {
    var path = [];
    for (var n = node; n && n.parent; n = n.parent) path.push(n.f);
    return path.reverse();
  }

  function findPath(root, path) {
    var node = root;
    for (var i = 0; i < path.length; i++) {
      var next = null;
      for (var k = 0; k < node.kids.length; k++) {
        if (node.kids[k].f === path[i]) {
          next = node.kids[k];
          break;
        }
      }
      if (!next) return node;
      node = next;
    }
    return node;
  }

  function rebuild(keepZoom) {
    var zoomPath = keepZoom && zoom ? pathOf(zoom) : [];
    view = state.inverted ? buildInvertedView() : buildNormalView();
    zoom = findPath(view.root, zoomPath);
    history = [];
    applySearch();
    buildSidebar();
  }

  // -- search -----------------------------------------------------------------------------------

  function fileText(fr, withDirs) {
    if (fr.task) return fr.name.toLowerCase(); // "<task> name": "<task>" finds every task
    if (fr.synthetic) return "";
    return (withDirs ? fr.filename : basename(fr.filename)).toLowerCase();
  }

  function matcher(text) {
    text = text.trim();
    if (!text) return null;
    var lower = text.toLowerCase();
    var fileLine = /^(.+):(\d+)$/.exec(text);
    var wantFile = fileLine ? fileLine[1].toLowerCase() : null;
    var wantLine = fileLine ? parseInt(fileLine[2], 10) : 0;
    // file names match on the base name, unless the text has a "/": "main" must not match
    // every file under /home/main/
    var withDirs = /[\\/]/.test(text);
    var wantDirs = wantFile !== null && /[\\/]/.test(wantFile);
    var memo = new Map();
    return function (f) {
      if (f < 0) return false;
      var hit = memo.get(f);
      if (hit !== undefined) return hit;
      var fr = frames[f];
      hit =
        fr.funcname.toLowerCase().indexOf(lower) >= 0 ||
        fileText(fr, withDirs).indexOf(lower) >= 0 ||
        (fr.module || "").toLowerCase().indexOf(lower) >= 0;
      if (!hit && wantFile !== null && fr.line === wantLine) {
        hit = fileText(fr, wantDirs).indexOf(wantFile) >= 0 || (fr.module || "").toLowerCase().indexOf(wantFile) >= 0;
      }
      memo.set(f, hit);
      return hit;
    };
  }

  function applySearch() {
    var test = matcher(state.search);
    var frameCount = 0, samples = 0;
    var order = view.order;
    for (var i = 0; i < order.length; i++) {
      var node = order[i];
      node.matched = !!(test && test(node.f));
      if (node.matched) {
        frameCount++;
        var counted = false; // a match under a match is already in its ancestor's samples
        for (var p = node.parent; p; p = p.parent) {
          if (p.matched) {
            counted = true;
            break;
          }
        }
        if (!counted && node.st !== GONE) samples += node.v;
      }
    }
    var total = view.root.v;
    match = { frames: frameCount, samples: samples, share: total > 0 ? samples / total : 0 };
    if (!test) {
      ui.match.textContent = "";
      ui.match.classList.remove("hl-has-match");
    } else {
      ui.match.textContent = frameCount
        ? "Matched " + fmtPct(100 * match.share) + " of samples (" + fmtInt(samples) + ") in " + fmtInt(frameCount) + (frameCount === 1 ? " frame" : " frames")
        : "No match";
      ui.match.classList.toggle("hl-has-match", frameCount > 0);
    }
  }

  var searchTimer = 0;
  function scheduleSearch() {
    if (searchTimer) clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      searchTimer = 0;
      state.search = ui.search.value;
      applySearch();
      draw();
    }, 120);
  }

  // -- layout and drawing -----------------------------------------------------------------------

  function chartSize() {
    return { w: Math.max(1, ui.chart.clientWidth), h: Math.max(1, ui.chart.clientHeight) };
  }

  function zoomChain() {
    var chain = [];
    for (var n = zoom; n; n = n.parent) chain.push(n);
    return chain.reverse();
  }

  function layout() {
    var t0 = performance.now();
    var size = chartSize();
    var width = size.w;
    rows = [];
    rects = [];
    var chain = zoomChain();
    var depth = 0;
    for (; depth < chain.length; depth++) {
      var r0 = { node: chain[depth], x: 0, w: width, depth: depth, ancestor: depth < chain.length - 1 };
      rects.push(r0);
      rows.push([r0]);
    }
    var zoomDepth = chain.length - 1;
    var maxDepth = zoomDepth;
    if (zoom.lv > 0) {
      var scale = width / zoom.lv;
      var todo = [[zoom, 0, zoomDepth]];
      while (todo.length) {
        var item = todo.pop();
        var parent = item[0], x = item[1], d = item[2] + 1;
        var children = [];
        var cx = x;
        for (var k = 0; k < parent.kids.length; k++) {
          var kid = parent.kids[k];
          var w = kid.lv * scale;
          if (w >= MIN_WIDTH) children.push([kid, cx, w]);
          cx += w;
        }
        if (!children.length) continue;
        if (!rows[d]) rows[d] = [];
        if (d > maxDepth) maxDepth = d;
        for (var c = 0; c < children.length; c++) {
          var rect = { node: children[c][0], x: children[c][1], w: children[c][2], depth: d, ancestor: false };
          rects.push(rect);
          rows[d].push(rect);
        }
        for (var q = children.length - 1; q >= 0; q--) todo.push([children[q][0], children[q][1], d]);
      }
    }
    for (var r = 0; r < rows.length; r++) {
      if (!rows[r]) rows[r] = [];
      else if (rows[r].length > 1) rows[r].sort(function (a, b) { return a.x - b.x; });
    }
    contentHeight = Math.max(size.h, (maxDepth + 1) * ROW + 8);
    ui.spacer.style.height = Math.max(0, contentHeight - size.h) + "px";
    render.layoutMs = performance.now() - t0;
  }

  function rowTop(depth) {
    return state.inverted ? depth * ROW + 4 : contentHeight - (depth + 1) * ROW - 4;
  }

  function depthAt(yContent) {
    var d = state.inverted ? Math.floor((yContent - 4) / ROW) : Math.floor((contentHeight - 4 - yContent) / ROW);
    return d;
  }

  function heatIndex(share) {
    var i = 0;
    while (i < HEAT_STEPS.length && share >= HEAT_STEPS[i]) i++;
    return i;
  }

  function diffInfo(node) {
    // totals (the default: growth shows all the way from the root to where it happened) or
    // self time (Tachyon's measure); in the inverted view a node's total is already self time
    var bySelf = state.diffBy === "self" && !state.inverted;
    var now = bySelf ? node.s : node.v;
    var base = bySelf ? node.b : node.bt;
    var diff = now - base;
    var pct = base > 0 ? (100 * diff) / base : now > 0 ? 100 : 0;
    return { now: now, base: base, diff: diff, pct: pct };
  }

  function fillFor(node) {
    if (node.f >= 0 && frames[node.f].task && !isDiff) return colors.task;
    if (node.f >= 0 && frames[node.f].synthetic && !frames[node.f].task) return colors.gc;
    if (isDiff) {
      if (node.st === NEW) return colors.fresh;
      if (node.st === GONE) return colors.gone;
      var pct = diffInfo(node).pct;
      var mag = Math.abs(pct);
      if (mag < 15) return colors.neutral;
      var level = mag >= 100 ? 2 : mag > 30 ? 1 : 0;
      return pct > 0 ? colors.grow[level] : colors.shrink[level];
    }
    var total = view.root.v || 1;
    return colors.heat[heatIndex(node.v / total)];
  }

  function labelFor(node) {
    if (node.f < 0) {
      var total = view.root.v;
      return "all (" + fmtInt(total) + " samples" + (state.thread !== null ? ", " + threadLabel(state.thread) : "") + ")";
    }
    var fr = frames[node.f];
    if (fr.task) return fr.name;
    if (fr.synthetic) return fr.funcname;
    var where = state.labels === "module" ? fr.module || basename(fr.filename) : basename(fr.filename);
    if (!isDiff) where += ":" + fr.line;
    return fr.funcname + " (" + where + ")";
  }

  function fitText(text, width) {
    var room = Math.floor((width - 6) / charWidth);
    if (room < 2) return "";
    if (text.length <= room) return text;
    return text.slice(0, room - 1) + "\u2026";
  }

  var drawQueued = false;
  function queueDraw() {
    if (drawQueued) return;
    drawQueued = true;
    window.requestAnimationFrame(function () {
      drawQueued = false;
      draw();
    });
  }

  function draw() {
    var t0 = performance.now();
    var size = chartSize();
    var dpr = window.devicePixelRatio || 1;
    var canvas = ui.canvas;
    var pixelW = Math.round(size.w * dpr), pixelH = Math.round(size.h * dpr);
    if (canvas.width !== pixelW || canvas.height !== pixelH) {
      canvas.width = pixelW;
      canvas.height = pixelH;
      canvas.style.width = size.w + "px";
      canvas.style.height = size.h + "px";
    }
    var ctx = ui.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = colors.bg;
    ctx.fillRect(0, 0, size.w, size.h);
    ctx.font = "12px " + colors.mono;
    ctx.textBaseline = "middle";
    var top = ui.chart.scrollTop;
    var searching = state.search.trim() !== "";
    var drawn = 0;
    for (var d = 0; d < rows.length; d++) {
      var y = rowTop(d) - top;
      if (y + ROW < 0 || y > size.h) continue;
      var row = rows[d];
      for (var i = 0; i < row.length; i++) {
        var r = row[i];
        var node = r.node;
        var fill = searching && node.matched ? colors.match : fillFor(node);
        ctx.globalAlpha = (searching && !node.matched) || r.ancestor ? (r.ancestor && !searching ? 0.7 : 0.35) : 1;
        ctx.fillStyle = fill;
        var w = r.w > 2 ? r.w - 1 : r.w;
        ctx.fillRect(r.x, y, w, ROW - 1);
        if (node.f >= 0 && frames[node.f].task && w > 2 * TASK_STRIPE) {
          ctx.fillStyle = colors.taskEdge;
          ctx.fillRect(r.x, y, TASK_STRIPE, ROW - 1);
        }
        if (node.st === GONE) {
          ctx.strokeStyle = colors.fg;
          ctx.globalAlpha = 0.35;
          ctx.strokeRect(r.x + 0.5, y + 0.5, Math.max(0, w - 1), ROW - 2);
        }
        if (r === hovered) {
          ctx.globalAlpha = 1;
          ctx.strokeStyle = colors.fg;
          ctx.lineWidth = 1.5;
          ctx.strokeRect(r.x + 0.75, y + 0.75, Math.max(0, w - 1.5), ROW - 2.5);
          ctx.lineWidth = 1;
        }
        if (r.w >= 24) {
          var text = fitText(labelFor(node), r.w);
          if (text) {
            ctx.globalAlpha = (searching && !node.matched) ? 0.6 : 1;
            ctx.fillStyle = textColorOn(fill);
            ctx.fillText(text, r.x + 4, y + ROW / 2);
          }
        }
        drawn++;
      }
    }
    ctx.globalAlpha = 1;
    render.ms = performance.now() - t0;
    render.frames = drawn;
    updateStatus();
  }

  function refresh(scrollToRoot) {
    layout();
    if (scrollToRoot) {
      ui.chart.scrollTop = state.inverted ? 0 : Math.max(0, contentHeight - ui.chart.clientHeight);
    }
    hovered = null;
    hideTooltip();
    draw();
    ui.back.disabled = history.length === 0;
    ui.empty.hidden = view.root.v > 0 || (isDiff && view.root.lv > 0);
  }

  // -- zoom -------------------------------------------------------------------------------------

  function zoomInto(node) {
    if (!node || node === zoom) return;
    history.push(zoom);
    zoom = node;
    refresh(true);
  }

  function resetZoom() {
    if (zoom === view.root && !history.length) return;
    history = [];
    zoom = view.root;
    refresh(true);
  }

  function zoomBack() {
    if (!history.length) return false;
    zoom = history.pop();
    refresh(true);
    return true;
  }

  // -- hit testing, tooltip, clicks ------------------------------------------------------------

  function rectAt(clientX, clientY) {
    var box = ui.canvas.getBoundingClientRect();
    var x = clientX - box.left;
    var yContent = clientY - box.top + ui.chart.scrollTop;
    var d = depthAt(yContent);
    var row = rows[d];
    if (!row || !row.length) return null;
    var lo = 0, hi = row.length - 1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      var r = row[mid];
      if (x < r.x) hi = mid - 1;
      else if (x >= r.x + r.w) lo = mid + 1;
      else return r;
    }
    return null;
  }

  function threadLabel(tid) {
    for (var i = 0; i < threadList.length; i++) {
      if (threadList[i].id === tid) return (threadList[i].name ? threadList[i].name + " " : "thread ") + "(" + tid + ")";
    }
    return "thread " + tid;
  }

  // --opcodes: instruction names of the target's Python version (flamegraph.py's opcode_mapping).
  var opcodeNames = (D.opcode_mapping && D.opcode_mapping.names) || {};
  var opcodeDeopt = (D.opcode_mapping && D.opcode_mapping.deopt) || {};

  function opcodeInfo(op) {
    var name = opcodeNames[op] || "<" + op + ">";
    var base = opcodeDeopt[op];
    var specialized = base !== undefined && base !== null;
    return { name: name, base: specialized ? opcodeNames[base] || "<" + base + ">" : name, specialized: specialized };
  }

  // The instruction counts behind a view node: its base node's (of the thread shown), or, in the
  // inverted view, summed over the distinct base nodes merged into it.
  function opcodesOf(node) {
    var bases = node.bases ? Array.from(node.bases) : node.base ? [node.base] : [];
    var sum = Object.create(null);
    var any = false;
    bases.forEach(function (base) {
      var counts = state.thread === null ? base.ops : base.tops && base.tops[state.thread];
      if (!counts) return;
      Object.keys(counts).forEach(function (op) {
        sum[op] = (sum[op] || 0) + counts[op];
        any = true;
      });
    });
    return any ? sum : null;
  }

  function opcodeSection(node) {
    var counts = opcodesOf(node);
    if (!counts) return null;
    var ops = Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a] || a - b; });
    var total = 0;
    ops.forEach(function (op) { total += counts[op]; });
    var box = el("div", { className: "hl-tip-opcodes" });
    box.appendChild(el("div", { className: "hl-tip-opcodes-title", text: "Bytecode instructions:" }));
    ops.slice(0, 8).forEach(function (op) {
      var info = opcodeInfo(op);
      var share = total > 0 ? (100 * counts[op]) / total : 0;
      var row = el("div", { className: "hl-tip-opcode" + (info.specialized ? " hl-specialized" : "") });
      row.appendChild(el("span", { className: "hl-op-name", text: info.name }));
      if (info.specialized) {
        row.appendChild(el("span", { className: "hl-op-base", text: " (" + info.base + ")" }));
        row.appendChild(el("span", { className: "hl-op-badge", text: "SPECIALIZED" }));
      }
      row.appendChild(el("span", { className: "hl-op-count", text: " " + fmtInt(counts[op]) + " (" + fmtPct(share, 1) + ")" }));
      box.appendChild(row);
    });
    if (ops.length > 8) box.appendChild(el("div", { className: "hl-tip-row", text: "+" + (ops.length - 8) + " more" }));
    return box;
  }

  function hideTooltip() {
    ui.tooltip.hidden = true;
    clearNode(ui.tooltip);
  }

  function tooltipRow(text) {
    return el("div", { className: "hl-tip-row", text: text });
  }

  function showTooltip(rect, clientX, clientY) {
    var node = rect.node;
    var total = view.root.v || 0;
    var tip = ui.tooltip;
    clearNode(tip);
    var fr = node.f >= 0 ? frames[node.f] : null;
    tip.appendChild(el("div", { className: "hl-tip-name", text: fr ? fr.funcname : "all samples" }));
    if (fr && !fr.synthetic) {
      var where = (state.labels === "module" ? fr.module + "  \u2014  " : "") + fr.filename + ":" + fr.line;
      tip.appendChild(el("div", { className: "hl-tip-where", text: where }));
    } else if (fr && fr.task) {
      tip.appendChild(el("div", { className: "hl-tip-where hl-tip-task", text: "asyncio task" }));
      tip.appendChild(tooltipRow(state.inverted ? "Below it: the coroutines it ran; above it: the tasks awaiting it" : "Above it: the coroutines it ran; below it: the tasks awaiting it"));
      var parents = /\((\d+) parents\)$/.exec(fr.funcname);
      if (parents) tip.appendChild(tooltipRow("Awaited by " + parents[1] + " tasks: its samples are shared out among them, each counted once"));
    } else if (fr) {
      var what = fr.funcname === "<GC>" ? "the garbage collector" : fr.funcname === "<native>" ? "native code (C), no Python frame" : "synthetic frame";
      tip.appendChild(el("div", { className: "hl-tip-where", text: what }));
    }
    if (node.st === NEW) tip.appendChild(el("span", { className: "hl-tip-badge hl-new", text: "NEW: not in the baseline" }));
    if (node.st === GONE) tip.appendChild(el("span", { className: "hl-tip-badge hl-gone", text: "GONE: only in the baseline" }));
    var share = total > 0 ? (100 * node.v) / total : 0;
    var selfShare = total > 0 ? (100 * node.s) / total : 0;
    tip.appendChild(
      tooltipRow("Total: " + fmtInt(node.v) + " samples, " + fmtPct(share, 2) + " of total, ~" + fmtSeconds((node.v * intervalUs) / 1e6))
    );
    tip.appendChild(tooltipRow("Self: " + fmtInt(node.s) + " samples, " + fmtPct(selfShare, 2) + " of total"));
    if (state.thread !== null) tip.appendChild(tooltipRow("Thread: " + threadLabel(state.thread)));
    if (isDiff) {
      var selfPct = node.b > 0 ? (100 * (node.s - node.b)) / node.b : node.s > 0 ? 100 : 0;
      var totPct = node.bt > 0 ? (100 * (node.v - node.bt)) / node.bt : node.v > 0 ? 100 : 0;
      tip.appendChild(
        tooltipRow(
          "Self: baseline " + fmtNum(node.b) + " \u2192 now " + fmtNum(node.s) + " (" + signed(node.s - node.b, fmtNum(Math.abs(node.s - node.b))) + ", " + signed(selfPct, fmtPct(Math.abs(selfPct))) + ")"
        )
      );
      tip.appendChild(
        tooltipRow(
          "Total: baseline " + fmtNum(node.bt) + " \u2192 now " + fmtNum(node.v) + " (" + signed(node.v - node.bt, fmtNum(Math.abs(node.v - node.bt))) + ", " + signed(totPct, fmtPct(Math.abs(totPct))) + ")"
        )
      );
    }
    var opcodeBox = fr ? opcodeSection(node) : null;
    if (opcodeBox) tip.appendChild(opcodeBox);
    var source = fr ? sourceOf(fr) : [];
    if (source.length) {
      var pre = el("pre", { className: "hl-tip-source" });
      var width = String(source[source.length - 1][0]).length;
      source.forEach(function (pair) {
        var num = String(pair[0]);
        while (num.length < width) num = " " + num;
        var current = pair[0] === fr.line;
        var line = (current ? "\u2192 " : "  ") + num + "  " + pair[1] + "\n";
        pre.appendChild(current ? el("span", { className: "hl-current", text: line }) : doc.createTextNode(line));
      });
      tip.appendChild(pre);
    }
    tip.appendChild(el("div", { className: "hl-tip-hint", text: rect.node === zoom ? "" : "Click to zoom" + (embedded && fr && !fr.synthetic ? " and open the file" : "") }));
    tip.hidden = false;
    var pad = 14;
    var tw = tip.offsetWidth, th = tip.offsetHeight;
    var left = clientX + pad, topPos = clientY + pad;
    if (left + tw > window.innerWidth - 4) left = Math.max(4, clientX - tw - pad);
    if (topPos + th > window.innerHeight - 4) topPos = Math.max(4, clientY - th - pad);
    tip.style.left = left + "px";
    tip.style.top = topPos + "px";
  }

  var host = null;
  function postToHost(message) {
    try {
      if (!host) {
        if (window.heatlineHost && typeof window.heatlineHost.postMessage === "function") host = window.heatlineHost;
        else if (typeof window.acquireVsCodeApi === "function") host = window.acquireVsCodeApi();
      }
    } catch (err) {
      host = null; // acquireVsCodeApi may be called once per webview; the page already did
    }
    if (host) host.postMessage(message);
    else if (window.parent !== window) window.parent.postMessage(message, "*");
  }

  function onClick(event) {
    var rect = rectAt(event.clientX, event.clientY);
    if (!rect) return;
    var node = rect.node;
    if (node.f >= 0 && !frames[node.f].synthetic) {
      var fr = frames[node.f];
      var message = { type: "open", file: fr.filename, line: fr.line };
      doc.dispatchEvent(new CustomEvent("heatline:open", { detail: { file: fr.filename, line: fr.line } }));
      if (embedded) postToHost(message);
    }
    if (node === view.root) resetZoom();
    else zoomInto(node);
  }

  // -- status bar and sidebar -------------------------------------------------------------------

  function updateStatus() {
    var parts = [];
    var chain = zoomChain();
    parts.push(chain.length > 1 ? "Zoom: " + chain.slice(1).map(function (n) { return frames[n.f].funcname; }).join(" \u203a ") : "Whole profile");
    if (state.inverted) parts.push("inverted");
    if (state.thread !== null) parts.push(threadLabel(state.thread));
    parts.push(fmtInt(render.frames) + " frames drawn");
    parts.push("Click a frame to zoom \u00b7 Esc resets \u00b7 / searches");
    ui.status.textContent = parts.join("   \u00b7   ");
  }

  function statList(items) {
    var dl = el("dl", { className: "hl-stats" });
    items.forEach(function (item) {
      if (!item) return;
      dl.appendChild(el("dt", { text: item[0] }));
      dl.appendChild(el("dd", { text: item[1] }));
    });
    return dl;
  }

  function bar(label, pct) {
    var fill = el("div", { className: "hl-bar-fill" });
    fill.style.width = Math.max(0, Math.min(100, pct)).toFixed(2) + "%";
    return el("div", { className: "hl-bar-row" }, [
      el("div", { className: "hl-bar-label" }, [el("span", { text: label }), el("span", { text: fmtPct(pct) })]),
      el("div", { className: "hl-bar-track" }, [fill]),
    ]);
  }

  function swatch(color, label) {
    var sw = el("span", { className: "hl-swatch" });
    sw.style.background = color;
    return el("span", null, [sw, doc.createTextNode(label)]);
  }

  function buildSidebar() {
    var side = ui.sidebar;
    clearNode(side);
    var s = stats;
    var expected = s.expected_samples || 0;
    var requested = intervalUs > 0 ? 1e6 / intervalUs : 0;
    side.appendChild(el("h2", { text: isDiff ? "This run" : "Run" }));
    side.appendChild(
      statList([
        ["Samples", fmtInt(s.samples || s.total_weight || 0)],
        s.total_weight !== s.samples ? ["Thread samples", fmtInt(s.total_weight || 0)] : null,
        ["Duration", fmtSeconds(s.duration_sec || 0)],
        ["Rate", fmtNum(s.sample_rate || 0, 1) + " /s (asked " + fmtNum(requested, 0) + ")"],
        ["Error rate", fmtPct(s.error_rate || 0, 2)],
        ["Missed samples", fmtInt(s.missed_samples || 0) + (expected ? " (" + fmtPct((100 * (s.missed_samples || 0)) / expected) + ")" : "")],
        ["Mode", String(s.mode || "wall")],
        s.python_version ? ["Python", String(s.python_version)] : null,
        s.pid ? ["PID", String(s.pid)] : null,
        ["Threads", fmtInt(threadList.length)],
      ])
    );
    var ts = D.thread_stats || {};
    var heading = "Thread states";
    if (state.thread !== null && D.per_thread_stats && D.per_thread_stats[state.thread]) {
      ts = D.per_thread_stats[state.thread];
      heading = "Thread states: " + threadLabel(state.thread);
    }
    side.appendChild(el("h2", { text: heading }));
    side.appendChild(bar("GIL held", ts.has_gil_pct || 0));
    side.appendChild(bar("On CPU", ts.on_cpu_pct || 0));
    side.appendChild(bar("Waiting for the GIL", ts.gil_requested_pct || 0));
    side.appendChild(bar("Garbage collection", ts.gc_pct || 0));
    side.appendChild(bar("Handling an exception", ts.has_exception_pct || 0));

    if (isDiff && D.diff) {
      var dd = D.diff;
      side.appendChild(el("h2", { text: "Compared with the baseline" }));
      side.appendChild(
        statList([
          ["Baseline samples", fmtInt(dd.baseline_samples)],
          ["Current samples", fmtInt(dd.current_samples)],
          ["Baseline scaled by", "\u00d7" + fmtNum(dd.baseline_scale, 3)],
          ["New frames", fmtInt(dd.new_count)],
          ["Disappeared frames", fmtInt(dd.elided_count)],
        ])
      );
      side.appendChild(
        el("div", { className: "hl-legend" }, [
          swatch(colors.grow[2], "grew"),
          swatch(colors.shrink[2], "shrank"),
          swatch(colors.neutral, "within 15%"),
          swatch(colors.fresh, "new"),
          swatch(colors.gone, "disappeared"),
        ])
      );
      side.appendChild(
        el("p", {
          className: "hl-note",
          text:
            "Colours compare each frame's " +
            (state.diffBy === "self" && !state.inverted ? "self time" : "total time") +
            " with the baseline's, scaled to this run's length; within 15% counts as unchanged.",
        })
      );
    }

    // hot spots: self samples per frame (thread filter applied, whichever way the tree is drawn)
    var selfBy = new Map();
    for (var i = 1; i < baseNodes.length; i++) {
      var n = baseNodes[i];
      var values = n.st === GONE ? null : valuesOf(n);
      if (values && values[1] > 0) selfBy.set(n.f, (selfBy.get(n.f) || 0) + values[1]);
    }
    var hot = Array.from(selfBy.entries()).sort(function (a, b) { return b[1] - a[1]; }).slice(0, 6);
    if (hot.length) {
      side.appendChild(el("h2", { text: "Hot spots (self)" }));
      var list = el("ol", { className: "hl-hotspots" });
      var total = view.root.v || 1;
      hot.forEach(function (entry) {
        var fr = frames[entry[0]];
        var button = el("button", { type: "button", title: fr.name }, [
          el("span", { className: "hl-fn", text: fr.task ? fr.name : fr.funcname + (fr.synthetic ? "" : " " + basename(fr.filename) + ":" + fr.line) }),
          el("span", { text: fmtPct((100 * entry[1]) / total) }),
        ]);
        button.addEventListener("click", function () {
          var query = fr.task ? fr.name : fr.synthetic ? fr.funcname : basename(fr.filename) + ":" + fr.line;
          setSearch(query);
        });
        list.appendChild(el("li", null, [button]));
      });
      side.appendChild(list);
    }
    // asyncio tasks (--async-aware): each task's samples, whichever task awaits it (a task is
    // on a stack at most once, so its nodes' totals add up)
    var taskBy = new Map();
    for (var k = 1; k < baseNodes.length; k++) {
      var tn = baseNodes[k];
      if (tn.f < 0 || !frames[tn.f].task || tn.st === GONE) continue;
      var tv = valuesOf(tn);
      if (tv && tv[0] > 0) taskBy.set(tn.f, (taskBy.get(tn.f) || 0) + tv[0]);
    }
    if (taskBy.size) {
      var tasks = Array.from(taskBy.entries()).sort(function (a, b) { return b[1] - a[1]; });
      side.appendChild(el("h2", { text: "Asyncio tasks" }));
      if (!isDiff) side.appendChild(el("div", { className: "hl-legend" }, [swatch(colors.task, "asyncio task")]));
      var taskList = el("ol", { className: "hl-hotspots hl-tasks" });
      var all = view.root.v || 1;
      tasks.slice(0, 12).forEach(function (entry) {
        var fr = frames[entry[0]];
        var button = el("button", { type: "button", title: fr.name + ": samples with the task on the stack" }, [
          el("span", { className: "hl-fn", text: fr.funcname }),
          el("span", { text: fmtPct((100 * entry[1]) / all) }),
        ]);
        button.addEventListener("click", function () {
          setSearch(fr.name);
        });
        taskList.appendChild(el("li", null, [button]));
      });
      side.appendChild(taskList);
      if (tasks.length > 12) side.appendChild(el("p", { className: "hl-note", text: fmtInt(tasks.length - 12) + " more tasks" }));
    }
    var pruned = D.pruned || {};
    if (pruned.nodes) {
      side.appendChild(
        el("p", {
          className: "hl-note",
          text: fmtInt(pruned.nodes) + " frames with fewer than " + fmtInt(pruned.threshold) + " samples each were left out of the file" + (pruned.samples ? " (" + fmtInt(pruned.samples) + " samples)." : "."),
        })
      );
    }
  }

  // -- controls ---------------------------------------------------------------------------------

  function setSearch(text) {
    ui.search.value = text;
    state.search = text;
    if (searchTimer) {
      clearTimeout(searchTimer);
      searchTimer = 0;
    }
    applySearch();
    draw();
  }

  function setInverted(on) {
    on = !!on;
    if (on === state.inverted) return;
    state.inverted = on;
    ui.invert.setAttribute("aria-pressed", String(on));
    rebuild(false);
    refresh(true);
  }

  function setThread(tid) {
    tid = tid === null || tid === undefined || tid === "" ? null : String(tid);
    if (tid !== null && !threadList.some(function (t) { return t.id === tid; })) return false;
    if (!hasThreadFilter && tid !== null) return false;
    state.thread = tid;
    if (ui.thread.value !== (tid || "")) ui.thread.value = tid || "";
    rebuild(true);
    refresh(true);
    return true;
  }

  function setLabels(mode) {
    state.labels = mode === "module" ? "module" : "file";
    ui.labels.setAttribute("aria-pressed", String(state.labels === "module"));
    ui.labels.textContent = state.labels === "module" ? "File names" : "Module names";
    safeSet(LABELS_KEY, state.labels);
    if (view) draw();
  }

  function setShowGone(on) {
    on = !!on && isDiff;
    if (on === state.showGone) return;
    state.showGone = on;
    ui.gone.setAttribute("aria-pressed", String(on));
    ui.gone.textContent = on ? "Hide disappeared" : "Show disappeared";
    rebuild(true);
    refresh(true);
  }

  function setDiffBy(mode) {
    state.diffBy = mode === "self" ? "self" : "total";
    ui.diffBy.textContent = "Colour: " + state.diffBy;
    safeSet(DIFF_BY_KEY, state.diffBy);
    if (view) {
      buildSidebar();
      draw();
    }
  }

  function setTheme(theme) {
    applyTheme(theme, true);
    buildSidebar();
    draw();
  }

  ui.search.addEventListener("input", scheduleSearch);
  ui.search.addEventListener("keydown", function (event) {
    if (event.key === "Enter") setSearch(ui.search.value);
  });
  ui.back.addEventListener("click", zoomBack);
  ui.reset.addEventListener("click", resetZoom);
  ui.thread.addEventListener("change", function () {
    setThread(ui.thread.value || null);
  });
  ui.invert.addEventListener("click", function () {
    setInverted(!state.inverted);
  });
  ui.labels.addEventListener("click", function () {
    setLabels(state.labels === "module" ? "file" : "module");
  });
  ui.gone.addEventListener("click", function () {
    setShowGone(!state.showGone);
  });
  ui.diffBy.addEventListener("click", function () {
    setDiffBy(state.diffBy === "self" ? "total" : "self");
  });
  ui.theme.addEventListener("click", function () {
    setTheme(state.theme === "dark" ? "light" : "dark");
  });
  ui.sidebarToggle.addEventListener("click", function () {
    var show = ui.sidebar.hidden;
    ui.sidebar.hidden = !show;
    ui.sidebarToggle.setAttribute("aria-pressed", String(show));
    refresh(false);
  });

  ui.canvas.addEventListener("click", onClick);
  ui.canvas.addEventListener("mousemove", function (event) {
    var rect = rectAt(event.clientX, event.clientY);
    if (rect !== hovered) {
      hovered = rect;
      queueDraw();
    }
    if (rect) showTooltip(rect, event.clientX, event.clientY);
    else hideTooltip();
  });
  ui.canvas.addEventListener("mouseleave", function () {
    hovered = null;
    hideTooltip();
    queueDraw();
  });
  ui.chart.addEventListener("scroll", function () {
    hideTooltip();
    queueDraw();
  });

  doc.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA");
    if (event.key === "Escape") {
      if (typing) target.blur();
      resetZoom();
      hideTooltip();
    } else if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      ui.search.focus();
      ui.search.select();
    }
  });

  var lastWidth = 0, lastHeight = 0;
  function onResize() {
    var size = chartSize();
    if (size.w === lastWidth && size.h === lastHeight) return;
    lastWidth = size.w;
    lastHeight = size.h;
    refresh(false);
  }
  if (typeof ResizeObserver === "function") new ResizeObserver(onResize).observe(ui.chart);
  window.addEventListener("resize", onResize);
  if (window.matchMedia) {
    var query = window.matchMedia("(prefers-color-scheme: dark)");
    if (query.addEventListener) {
      query.addEventListener("change", function () {
        if (!safeGet(THEME_KEY)) setTheme(query.matches ? "dark" : "light");
      });
    }
  }

  // -- the API ----------------------------------------------------------------------------------

  function frameInfo(rect, node) {
    node = node || rect.node;
    var fr = node.f >= 0 ? frames[node.f] : null;
    var total = view.root.v;
    var info = {
      name: fr ? fr.name : "all",
      funcname: fr ? fr.funcname : "all",
      file: fr ? fr.filename : "",
      module: fr ? fr.module : "",
      line: fr ? fr.line : 0,
      task: !!(fr && fr.task),
      value: node.v,
      self: node.s,
      share: total > 0 ? node.v / total : 0,
      matched: !!node.matched,
      status: STATUS_NAMES[node.st] || "",
      zoomRoot: node === zoom,
      baseline: node.b,
      baselineTotal: node.bt,
      diff: isDiff ? diffInfo(node).diff : 0,
      diffPct: isDiff ? diffInfo(node).pct : 0,
    };
    if (rect) {
      var box = ui.canvas.getBoundingClientRect();
      var y = rowTop(rect.depth) - ui.chart.scrollTop;
      info.depth = rect.depth;
      info.ancestor = rect.ancestor;
      info.x = box.left + rect.x;
      info.y = box.top + y;
      info.width = rect.w;
      info.height = ROW - 1;
      info.onScreen = y >= 0 && y + ROW <= box.height;
    }
    return info;
  }

  function heaviest(test) {
    var best = null;
    for (var i = 0; i < view.order.length; i++) {
      var n = view.order[i];
      if (n.f >= 0 && test(frames[n.f]) && (!best || n.lv > best.lv)) best = n;
    }
    return best;
  }

  // Zooms to the heaviest frame of one function (a host's "show this function" request):
  // {funcname, filename} as the profile names them; false when the profile has no such frame.
  function focusOn(spec) {
    if (!spec || typeof spec.funcname !== "string") return false;
    var node = heaviest(function (fr) {
      return fr.funcname === spec.funcname && (typeof spec.filename !== "string" || fr.filename === spec.filename);
    });
    if (!node) return false;
    zoomInto(node);
    return true;
  }

  var api = {
    version: 1,
    kind: isDiff ? "diff" : "flamegraph",
    visibleFrames: function () {
      return rects.map(function (r) { return frameInfo(r); });
    },
    root: function () {
      for (var i = 0; i < rects.length; i++) if (rects[i].node === zoom) return frameInfo(rects[i]);
      return frameInfo(null, zoom);
    },
    search: function (text) {
      setSearch(String(text === undefined || text === null ? "" : text));
      return { text: state.search, frames: match.frames, samples: match.samples, share: match.share };
    },
    zoomTo: function (name) {
      var best = null;
      for (var pass = 0; pass < 2 && !best; pass++) {
        best = heaviest(function (fr) { return pass === 0 ? fr.name === name : fr.funcname === name; });
      }
      if (!best) return false;
      zoomInto(best);
      return true;
    },
    focus: focusOn,
    back: zoomBack,
    reset: function () {
      resetZoom();
    },
    state: function () {
      return {
        zoom: zoom.f >= 0 ? frames[zoom.f].name : "all",
        inverted: state.inverted,
        thread: state.thread,
        theme: state.theme,
        labels: state.labels,
        search: state.search,
        matchShare: match.share,
        matchSamples: match.samples,
        showGone: state.showGone,
        diffBy: state.diffBy,
        embedded: embedded,
      };
    },
    threads: function () {
      return threadList.map(function (t) { return { id: t.id, name: t.name, samples: t.samples }; });
    },
    tooltipText: function () {
      return ui.tooltip.hidden ? "" : ui.tooltip.innerText;
    },
    lastRender: function () {
      return { ms: render.ms, layoutMs: render.layoutMs, frames: render.frames };
    },
    setInverted: setInverted,
    setThread: setThread,
    setTheme: function (theme) {
      setTheme(theme);
    },
    setLabels: setLabels,
    setShowGone: setShowGone,
    setDiffBy: setDiffBy,
  };
  Object.freeze(api);
  try {
    Object.defineProperty(window, "heatline", { value: api, writable: false, configurable: false, enumerable: true });
  } catch (err) {
    window.heatline = api;
  }

  // -- start ------------------------------------------------------------------------------------

  applyTheme(initialTheme(), false);
  setLabels(state.labels);
  setDiffBy(state.diffBy);
  rebuild(false);
  lastWidth = chartSize().w;
  lastHeight = chartSize().h;
  if (!(D.focus && focusOn(D.focus))) refresh(true);
})();
