// Bundle the playground page's third-party code into one vendored ES module.
//
//   cd bridge/frontend && npm ci && node build.mjs
//
// Writes, under bridge/static/vendor/:
//   vendor.js      src/vendor.js and what it imports, minified, one ES module
//   versions.json  {package: version} of every package whose code is in vendor.js (from
//                  each package's package.json, which npm ci installs from package-lock.json)
//   LICENSES.txt   the licence text of each of those packages
// The output is deterministic (no timestamps, sorted lists, esbuild pinned by the lockfile):
// rebuilding from the same lockfile gives the same bytes (tests/test_page_vendor.py checks).
import { build } from "esbuild";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "static", "vendor");
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: [join(here, "src", "vendor.js")],
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  legalComments: "none", // the licences go to LICENSES.txt, whole
  metafile: true,
  write: false,
  charset: "utf8",
  absWorkingDir: here,
});

// The packages whose files went into the bundle: node_modules/<name> or node_modules/@s/<name>.
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const parts = input.split(/[\\/]/);
  const at = parts.lastIndexOf("node_modules");
  if (at < 0) continue;
  const name = parts[at + 1].startsWith("@") ? `${parts[at + 1]}/${parts[at + 2]}` : parts[at + 1];
  packages.add(name);
}
const names = [...packages].sort();
const versions = {};
const licences = [];
for (const name of names) {
  const dir = join(here, "node_modules", ...name.split("/"));
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  versions[name] = meta.version;
  const file = readdirSync(dir).sort().find((f) => /^(licen[cs]e|copying)([-.]|$)/i.test(f));
  if (!file) throw new Error(`${name} ships no LICENSE file: check its terms by hand`);
  const text = readFileSync(join(dir, file), "utf8").trim();
  licences.push(`${"=".repeat(78)}\n${name} ${meta.version} (${meta.license})\n` +
                `${relative(here, join(dir, file)).split(sep).join("/")}\n${"=".repeat(78)}\n\n${text}\n`);
}
const banner = `/* kitplay playground vendor bundle: ${names.map((n) => `${n}@${versions[n]}`).join(", ")}.` +
  ` Licences: vendor/LICENSES.txt. Built by bridge/frontend/build.mjs. */\n`;
writeFileSync(join(out, "vendor.js"), banner + result.outputFiles[0].text);
writeFileSync(join(out, "versions.json"), JSON.stringify(versions, null, 2) + "\n");
writeFileSync(join(out, "LICENSES.txt"),
  "Third-party code bundled into vendor.js, with the licence each package ships.\n\n" +
  licences.join("\n"));
console.log(`vendor.js: ${names.length} packages, ${result.outputFiles[0].contents.length} bytes`);
