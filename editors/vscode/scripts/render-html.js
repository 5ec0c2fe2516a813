// For tests: node scripts/render-html.js DATA.json OUT.html — the webview page for plain Chromium,
// with the viewer loaded from media/ through file:// URLs (cspSource "file:").
"use strict";
const fs = require("fs");
const path = require("path");
const { pathToFileURL } = require("url");
require("../out-test/test/vscode-mock.js");
const { flamegraphHtml, makeNonce } = require("../out-test/src/webview.js");

const [dataPath, outPath] = process.argv.slice(2);
const media = path.resolve(__dirname, "..", "media");
const html = flamegraphHtml(JSON.parse(fs.readFileSync(dataPath, "utf8")), {
  nonce: makeNonce(),
  cspSource: "file:",
  scriptUri: pathToFileURL(path.join(media, "flamegraph.js")).href,
  styleUri: pathToFileURL(path.join(media, "flamegraph.css")).href,
});
fs.writeFileSync(outPath, html);
