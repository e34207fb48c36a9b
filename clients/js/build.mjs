// Fill the web app's vendor/ folder (ddx_offchain/api/app/vendor/) from the npm dependencies pinned in
// package-lock.json and this client's sources: plain file copies of the libraries' own ES-module builds, with their
// licenses. `make install` runs it after `npm ci`; the API serves /app only once vendor/.built exists.
//   node clients/js/build.mjs [--check]     (--check: exit 1 unless vendor/ is exactly what a build would write)
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const out = join(root, "ddx_offchain/api/app/vendor");
const pkgDir = (name) => join(root, "node_modules", name); // installed by npm ci from package-lock.json
const version = (name) => JSON.parse(readFileSync(join(pkgDir(name), "package.json"), "utf8")).version;

const files = [
  // [source, destination under vendor/]
  [join(pkgDir("ethers"), "dist/ethers.min.js"), "ethers.min.js"],
  [join(pkgDir("ethers"), "LICENSE.md"), "ethers.LICENSE.md"],
  [join(pkgDir("lightweight-charts"), "dist/lightweight-charts.standalone.production.mjs"), "lightweight-charts.mjs"],
  [join(pkgDir("lightweight-charts"), "LICENSE"), "lightweight-charts.LICENSE"],
  ...readdirSync(join(here, "src")).filter((f) => f.endsWith(".mjs")).map((f) => [join(here, "src", f), `ddx-client/${f}`]),
];
const stamp = JSON.stringify({ ethers: version("ethers"), "lightweight-charts": version("lightweight-charts"),
  files: files.map(([, d]) => d) }, null, 1) + "\n";

if (process.argv.includes("--check")) {
  const stale = files.filter(([src, dst]) => !existsSync(join(out, dst)) || !readFileSync(join(out, dst)).equals(readFileSync(src)));
  const stampOk = existsSync(join(out, ".built")) && readFileSync(join(out, ".built"), "utf8") === stamp;
  if (stale.length || !stampOk) {
    console.error(`vendor/ is stale: ${stale.map(([, d]) => d).join(", ") || ".built"}; run node clients/js/build.mjs`);
    process.exit(1);
  }
  process.exit(0);
}
rmSync(out, { recursive: true, force: true });
for (const [src, dst] of files) {
  mkdirSync(dirname(join(out, dst)), { recursive: true });
  copyFileSync(src, join(out, dst));
}
writeFileSync(join(out, ".built"), stamp);
console.log(`app vendor/: ${files.length} files (ethers ${version("ethers")}, lightweight-charts ${version("lightweight-charts")})`);
