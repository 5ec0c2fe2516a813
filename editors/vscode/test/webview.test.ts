import "./vscode-mock";
import assert from "node:assert/strict";
import { NO_PROFILE, contentSecurityPolicy, flamegraphHtml, isPanelState, jsonForScript, makeNonce, messageHtml, routeMessage, themeFor } from "../src/webview";

const OPTS = { nonce: "abc123XYZ", cspSource: "https://file+.vscode-resource.vscode-cdn.net", scriptUri: "https://r/flamegraph.js", styleUri: "https://r/flamegraph.css" };
const HOSTILE = "</script><script>alert(1)</script>";

function dataWith(name: string) {
  return { title: `profile of ${name}`, frames: { funcname: [name], filename: ["a.py"] }, extra: "a\u2028b\u2029c & <!-- -->" };
}

test("CSP: nothing by default, nonce'd scripts, styles and images from the webview only", () => {
  assert.equal(
    contentSecurityPolicy(OPTS),
    "default-src 'none'; img-src https://file+.vscode-resource.vscode-cdn.net data:; style-src https://file+.vscode-resource.vscode-cdn.net; script-src 'nonce-abc123XYZ'",
  );
  const html = flamegraphHtml(dataWith("f"), OPTS);
  assert.ok(html.includes(`<meta http-equiv="Content-Security-Policy" content="default-src 'none';`));
  const scripts = html.match(/<script\b[^>]*>/g)!;
  for (const s of scripts) assert.ok(s.includes('nonce="abc123XYZ"') || s.includes('type="application/json"'), s);
  assert.ok(html.includes('<script nonce="abc123XYZ" src="https://r/flamegraph.js"></script>'));
  assert.ok(html.includes('<link rel="stylesheet" href="https://r/flamegraph.css">'));
  assert.ok(!/ on[a-z]+=/i.test(html), "no inline handlers");
  assert.ok(!/style=/.test(html), "no inline styles");
});

test("a hostile function name cannot leave the JSON script element", () => {
  const html = flamegraphHtml(dataWith(HOSTILE), OPTS);
  const start = html.indexOf('<script type="application/json" id="heatline-data">');
  const body = html.slice(start);
  const end = body.indexOf("</script>");
  const json = body.slice(body.indexOf(">") + 1, end);
  assert.ok(!/[<>&\u2028\u2029]/.test(json), "no raw < > & U+2028 U+2029 in the JSON");
  assert.deepEqual(JSON.parse(json), dataWith(HOSTILE), "the JSON still decodes to the same data");
  assert.equal((html.match(/<script/g) || []).length, 4, "only our four script elements");
  assert.ok(html.includes(`<title>profile of &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;</title>`));
  assert.equal(jsonForScript("</script>"), '"\\u003c/script\\u003e"');
});

test("nonces are fresh and alphanumeric; a bad nonce is refused", () => {
  const a = makeNonce(), b = makeNonce();
  assert.match(a, /^[A-Za-z0-9]{20,}$/);
  assert.notEqual(a, b);
  assert.throws(() => flamegraphHtml({}, { ...OPTS, nonce: "x' 'unsafe-inline" }));
});

test("messages: open requests become 0-based locations, anything else is dropped", () => {
  assert.deepEqual(routeMessage({ type: "open", file: "/w/app.py", line: 10 }), { file: "/w/app.py", line: 9 });
  assert.deepEqual(routeMessage({ type: "open", file: "app.py", line: 0 }), { file: "app.py", line: 0 });
  assert.deepEqual(routeMessage({ type: "open", file: "app.py" }), { file: "app.py", line: 0 });
  for (const bad of [null, undefined, "open", 3, {}, { type: "close", file: "a.py", line: 1 }, { type: "open", file: "", line: 1 },
    { type: "open", file: 5, line: 1 }, { type: "open", file: "<frozen importlib._bootstrap>", line: 1 }]) {
    assert.equal(routeMessage(bad), undefined, JSON.stringify(bad));
  }
});

test("restore state and theme: kept by setState, theme messages and the body class reach the viewer", () => {
  const html = flamegraphHtml(dataWith("f"), { ...OPTS, state: { kind: "flamegraph", args: { function: "</script>" } }, theme: "light" });
  assert.ok(html.includes("window.heatlineHost.setState(state)"));
  assert.ok(!html.includes('"</script>"') && html.includes("\\u003c/script\\u003e"));
  assert.ok(html.includes('m.type === "theme"') && html.includes('apply("light")'));
  assert.equal(html.match(/<script\b[^>]*>/g)!.length, 4);
  assert.equal(themeFor(1), "light");
  assert.equal(themeFor(4), "light");
  assert.equal(themeFor(2), "dark");
  assert.equal(themeFor(3), "dark");
  assert.equal(themeFor(undefined), "dark");
  assert.ok(isPanelState({ kind: "diff" }) && isPanelState({ kind: "flamegraph", args: {} }));
  assert.ok(!isPanelState(undefined) && !isPanelState({ kind: "x" }) && !isPanelState({ kind: "diff", args: 3 }));
});

test("message page and summary: escaped, no scripts", () => {
  const page = messageHtml(NO_PROFILE, { ...OPTS, summary: [["Profile", "<b>x</b>"]] });
  assert.ok(page.includes("no longer loaded") && !/<script/.test(page));
  assert.ok(page.includes("<dt>Profile</dt><dd>&lt;b&gt;x&lt;/b&gt;</dd>"));
  assert.ok(page.includes("default-src 'none'"));
  const graph = flamegraphHtml(dataWith("f"), { ...OPTS, summary: [["Samples", "1,234"]] });
  assert.ok(graph.includes('<dl class="heatline-summary"><dt>Samples</dt><dd>1,234</dd></dl>'));
});
