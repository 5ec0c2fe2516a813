// npm run build: bundle the extension with esbuild and copy the flame graph viewer into media/.
import { build } from "esbuild";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const assets = resolve(root, "..", "..", "sampler", "collectors", "flamegraph_assets");

await build({
  entryPoints: [join(root, "src", "extension.ts")],
  bundle: true,
  outfile: join(root, "out", "extension.js"),
  platform: "node",
  format: "cjs",
  target: "node20",
  external: ["vscode"],
  sourcemap: true,
  logLevel: "warning",
});

mkdirSync(join(root, "media"), { recursive: true });
for (const name of ["flamegraph.js", "flamegraph.css"]) {
  const from = join(assets, name);
  if (!existsSync(from)) throw new Error(`missing ${from}: the viewer comes from sampler/collectors/flamegraph_assets`);
  copyFileSync(from, join(root, "media", name));
}
console.log("built out/extension.js and media/");
