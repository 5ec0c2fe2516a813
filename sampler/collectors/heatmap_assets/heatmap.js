// heatline heatmap: the Self/Total, Show all/Hot only and (--opcodes) bytecode toggles of a
// source page.
// Inlined into the page and allowed by its hash in the Content-Security-Policy. It only
// switches classes on <body> (the stylesheet does the rest), reads no data from the page
// into HTML, and never uses innerHTML, eval or inline event handlers.
(function () {
  "use strict";
  var body = document.body;
  var KEY = "heatline.heatmap.view";
  var state = { metric: "self", hot: false };

  try {
    var saved = JSON.parse(window.localStorage.getItem(KEY) || "{}");
    if (saved && saved.metric === "total") { state.metric = "total"; }
    if (saved && saved.hot === true) { state.hot = true; }
  } catch (e) { /* no storage for file:// pages in this browser: keep the defaults */ }

  function press(id, on) {
    var button = document.getElementById(id);
    if (button) { button.setAttribute("aria-pressed", on ? "true" : "false"); }
  }

  function apply() {
    body.classList.toggle("metric-self", state.metric === "self");
    body.classList.toggle("metric-total", state.metric === "total");
    body.classList.toggle("hot-only", state.hot);
    press("show-self", state.metric === "self");
    press("show-total", state.metric === "total");
    press("show-all", !state.hot);
    press("show-hot", state.hot);
  }

  function save() {
    try { window.localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* ignore */ }
  }

  function targetRow() {
    var id;
    try { id = decodeURIComponent(window.location.hash.slice(1)); } catch (e) { return null; }
    return id ? document.getElementById(id) : null;
  }

  // A #line-N link to a line that "Hot only" hides shows every line again.
  function reveal(scroll) {
    var row = targetRow();
    if (!row) { return; }
    if (state.hot && row.getClientRects().length === 0) {
      state.hot = false;
      apply();
    }
    if (scroll) { row.scrollIntoView({ block: "center" }); }
  }

  function set(metric, hot) {
    state.metric = metric;
    state.hot = hot;
    apply();
    save();
    reveal(false);
  }

  function onClick(id, handler) {
    var button = document.getElementById(id);
    if (button) { button.addEventListener("click", handler); }
  }

  onClick("show-self", function () { set("self", state.hot); });
  onClick("show-total", function () { set("total", state.hot); });
  onClick("show-all", function () { set(state.metric, false); });
  onClick("show-hot", function () { set(state.metric, true); });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = event.target && event.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") { return; }
    if (event.key === "s") { set("self", state.hot); }
    else if (event.key === "t") { set("total", state.hot); }
    else if (event.key === "h") { set(state.metric, !state.hot); }
  });

  // Caller/callee menus: one open at a time; Escape or a click elsewhere closes it.
  function closeMenus(except) {
    var open = document.querySelectorAll("details.calls[open]");
    for (var i = 0; i < open.length; i++) {
      if (open[i] !== except) { open[i].removeAttribute("open"); }
    }
  }
  document.addEventListener("toggle", function (event) {
    var menu = event.target;
    if (menu.matches && menu.matches("details.calls") && menu.open) { closeMenus(menu); }
  }, true);
  document.addEventListener("click", function (event) {
    if (!(event.target.closest && event.target.closest("details.calls"))) { closeMenus(null); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { closeMenus(null); }
  });

  // --opcodes: a line's bytecode panel (the row after it), all of them, and the colouring of
  // lines by their specialized share.
  function openPanel(button, open) {
    var panel = document.getElementById(button.getAttribute("aria-controls"));
    if (!panel) { return; }
    panel.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.bc-toggle");
    if (button) { openPanel(button, button.getAttribute("aria-expanded") !== "true"); }
  });
  function toggleAll() {
    var buttons = document.querySelectorAll("button.bc-toggle");
    var all = document.getElementById("toggle-all-bytecode");
    var open = !(all && all.getAttribute("aria-pressed") === "true");
    for (var i = 0; i < buttons.length; i++) { openPanel(buttons[i], open); }
    press("toggle-all-bytecode", open);
  }
  function toggleSpec() {
    var on = !body.classList.contains("spec-view");
    body.classList.toggle("spec-view", on);
    press("show-spec", on);
  }
  onClick("toggle-all-bytecode", toggleAll);
  onClick("show-spec", toggleSpec);
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || !document.getElementById("show-spec")) { return; }
    var tag = event.target && event.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") { return; }
    if (event.key === "b") { toggleAll(); }
    else if (event.key === "p") { toggleSpec(); }
  });

  window.addEventListener("hashchange", function () { closeMenus(null); reveal(true); });
  apply();
  reveal(true);
}());
