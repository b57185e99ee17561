// Compiles src/ (with the generated Prisma clients) to plain ESM JavaScript in
// dist/ with tsc and tsconfig.build.json, so that the server and the
// `gatehouse` command run with no TypeScript loader.
//
//   node scripts/build.mjs             `npm run build`: always compiles, type-checked;
//                                      exits non-zero on a type error
//   node scripts/build.mjs --if-stale  compiles only when dist/ is missing or older than
//                                      its sources (scripts/build-state.mjs), without
//                                      type-checking (that is `npm run typecheck`);
//                                      run by npm install, npm start, tap and the benchmark
//
// dist/ is emptied first, so no output of a deleted source survives, and
// dist/.build-stamp is written only after tsc succeeded.
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { staleBuildReason, stampName } from "./build-state.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const ifStale = process.argv.includes("--if-stale");

function fail(message) {
  process.stderr.write(`gatehouse build: ${message}\n`);
  process.exit(1);
}

let reason = "";
if (ifStale) {
  reason = staleBuildReason(root);
  if (!reason) process.exit(0);
}

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
} catch {
  fail(`${reason ? `${reason} and ` : ""}typescript (a devDependency) is not installed: build where devDependencies are installed (npm ci, then npm run build)`);
}

if (reason) process.stderr.write(`gatehouse build: ${reason}: compiling src/ to dist/\n`);
const dist = join(root, "dist");
// Sources changed after this instant make the build stale again.
const startedAt = new Date();
rmSync(dist, { recursive: true, force: true });
const args = [tsc, "-p", join(root, "tsconfig.build.json"), ...(ifStale ? ["--noCheck"] : [])];
// NODE_OPTIONS is left out: a test runner's loader or coverage hooks have no business in the compiler.
const { NODE_OPTIONS: _, ...env } = process.env;
const result = spawnSync(process.execPath, args, { cwd: root, env, stdio: "inherit" });
if (result.status !== 0) fail(`tsc ${result.signal ? `was killed by ${result.signal}` : `failed (exit ${result.status})`}: dist/ is not marked as built`);

mkdirSync(dist, { recursive: true });
const stamp = join(dist, stampName);
writeFileSync(stamp, `${JSON.stringify({ builtAt: startedAt.toISOString(), typeChecked: !ifStale })}\n`);
utimesSync(stamp, startedAt, startedAt);
