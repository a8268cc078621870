// Builds the console into web/dist (committed; the binary embeds it, and the hand-written files
// of web/static beside it), or with --tests the browser tests into web/.test-build. Deterministic: the same sources give the same bytes,
// so `.ci/run` can rebuild and diff. A .gz is rewritten only when its content changes, so a
// different zlib on another machine does not show up as a difference.
import { build } from "esbuild";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync, constants } from "node:zlib";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(web, "dist");

if (process.argv.includes("--tests")) {
  const out = join(web, ".test-build");
  rmSync(out, { recursive: true, force: true });
  const entries = readdirSync(join(web, "tests"))
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && !f.startsWith("_"))
    .map((f) => join(web, "tests", f));
  await build({
    entryPoints: entries,
    outdir: out,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    logLevel: "warning",
  });
  process.exit(0);
}

mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [join(web, "src", "main.ts")],
  outfile: join(dist, "console.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  charset: "utf8",
  legalComments: "eof",
  logLevel: "warning",
});

// Precompressed copies the server sends to browsers that accept gzip. The server embeds the
// plain files written by hand from web/static itself (src/console/assets.rs), so they are not
// copied here; only the bundle and the .gz files are built.
const sources = { "index.html": "static", "console.js": "dist", "console.css": "static", "favicon.svg": "static" };
let total = 0;
for (const [file, dir] of Object.entries(sources)) {
  const plain = readFileSync(join(web, dir, file));
  const gz = join(dist, `${file}.gz`);
  const same = existsSync(gz) && gunzipSync(readFileSync(gz)).equals(plain);
  if (!same) writeFileSync(gz, gzipSync(plain, { level: constants.Z_BEST_COMPRESSION }));
  const size = readFileSync(gz).length;
  total += size;
  console.log(`${file.padEnd(12)} ${String(plain.length).padStart(7)} B, gzip ${String(size).padStart(6)} B`);
}
console.log(`first load, gzip: ${total} B (budget 150 KB)`);
