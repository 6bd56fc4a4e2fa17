// run.js runs the Node test suite against a real wsgate binary: the one
// WSGATE_BIN names, or one it builds from this repository into .cache/
// (go build caches, so a rebuild with nothing changed takes a second).
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const env = { ...process.env };
if (!env.WSGATE_BIN) {
  const root = resolve(pkg, "../..");
  const bin = join(pkg, ".cache", "wsgate");
  console.log(`building ${bin} from ${root}/cmd/wsgate (set WSGATE_BIN to use another binary)`);
  const b = spawnSync("go", ["build", "-o", bin, "./cmd/wsgate"], { cwd: root, stdio: "inherit" });
  if (b.status !== 0) {
    console.error("go build failed: set WSGATE_BIN to a wsgate binary, or install Go");
    process.exit(1);
  }
  env.WSGATE_BIN = bin;
}
const files = readdirSync(here)
  .filter((f) => f.endsWith(".test.js"))
  .sort()
  .map((f) => join(here, f));
// One file at a time: each starts its own gateways, and the machines that
// run this are small.
const args = ["--test", "--test-reporter=spec", "--test-concurrency=1", "--test-timeout=60000", ...process.argv.slice(2), ...files];
const r = spawnSync(process.execPath, args, { cwd: pkg, env, stdio: "inherit" });
process.exit(r.status ?? 1);
