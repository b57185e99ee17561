/**
 * Production runs plain JavaScript: the server and the gatehouse command run
 * from dist/ (compiled by `npm run build`) with no TypeScript loader, and the
 * command refuses to run a build that is missing or older than src/.
 */
import t from "tap";
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { outcomeOf, root, runCli, startServer, type RunResult } from "../helpers/processes.ts";

/** Relative imports of TypeScript files, and any import of tsx: what plain Node.js cannot run. */
const typeScriptImport = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](?:\.{1,2}\/[^"']*\.[mc]?tsx?|tsx(?:\/[^"']*)?)["']/;

function javaScriptFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".js")).map((f) => join(dir, f));
}

t.test("the server runs from dist/ as plain JavaScript, with no TypeScript loader", async (t) => {
  const files = [join(root, "bin/gatehouse.js"), ...javaScriptFiles(join(root, "dist"))];
  t.ok(files.some((f) => f.endsWith(join("dist", "server.js"))), "dist/server.js was built");
  t.same(files.filter((f) => typeScriptImport.test(readFileSync(f, "utf8"))), [], "no compiled file imports a .ts file or tsx");

  const dir = mkdtempSync(join(tmpdir(), "gatehouse-build-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const server = await startServer(t, { DATABASE_URL: `file:${join(dir, "db.sqlite")}`, KEYS_DIR: join(dir, "keys") });
  const res = await fetch(`${server.url}/.well-known/openid-configuration`);
  t.equal(res.status, 200, "it serves discovery");
  if (process.platform === "linux") {
    // proc(5): the process's arguments and environment as it was started.
    const argv = readFileSync(`/proc/${server.child.pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    t.same(argv, [process.execPath, join(root, "dist/server.js")], "started as `node dist/server.js`, no --import or --loader");
    // tap gives every child it spawns its process-tracking hook (@tapjs/processinfo) through
    // NODE_OPTIONS; that hook compiles nothing. No TypeScript loader may come in that way.
    const environ = readFileSync(`/proc/${server.child.pid}/environ`, "utf8").split("\0");
    const nodeOptions = environ.find((v) => v.startsWith("NODE_OPTIONS=")) ?? "";
    t.notMatch(nodeOptions, /tsx|ts-node|typescript|strip-types|transform-types/, "no TypeScript loader in NODE_OPTIONS");
  }
  const list = await runCli(["clients", "list"], { DATABASE_URL: `file:${join(dir, "db.sqlite")}`, KEYS_DIR: join(dir, "keys") });
  t.equal(list.code, 0, list.stderr);
  t.same(JSON.parse(list.stdout), [], "the compiled command works on the same database");
});

/** Runs a copy of bin/gatehouse.js inside `checkout`. */
function runBin(checkout: string): Promise<RunResult> {
  return outcomeOf(spawn(process.execPath, [join(checkout, "bin/gatehouse.js")], { cwd: checkout, env: { PATH: process.env.PATH } }));
}

t.test("the gatehouse command stops with one line when dist/ is missing or older than src/", async (t) => {
  // A checkout of its own: the real bin/gatehouse.js and build check, a source file, and a stand-in build.
  const checkout = mkdtempSync(join(tmpdir(), "gatehouse-checkout-"));
  t.teardown(() => rmSync(checkout, { recursive: true, force: true }));
  for (const dir of ["bin", "scripts", "src/cli"]) mkdirSync(join(checkout, dir), { recursive: true });
  copyFileSync(join(root, "bin/gatehouse.js"), join(checkout, "bin/gatehouse.js"));
  copyFileSync(join(root, "scripts/build-state.mjs"), join(checkout, "scripts/build-state.mjs"));
  writeFileSync(join(checkout, "package.json"), '{ "type": "module" }\n');
  writeFileSync(join(checkout, "src/cli/main.ts"), "// the CLI's source\n");

  const missing = await runBin(checkout);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, "gatehouse: dist/ is missing: run `npm run build`\n");
  t.equal(missing.stdout, "", "nothing ran");

  mkdirSync(join(checkout, "dist/cli"), { recursive: true });
  writeFileSync(join(checkout, "dist/cli/main.js"), 'process.stdout.write("compiled\\n");\n');
  const stamp = join(checkout, "dist/.build-stamp");
  writeFileSync(stamp, "{}\n");
  const now = Date.now() / 1000;
  for (const path of ["src", "src/cli", "bin", "scripts"]) utimesSync(join(checkout, path), now - 60, now - 60);
  utimesSync(stamp, now - 30, now - 30);
  utimesSync(join(checkout, "src/cli/main.ts"), now, now);

  const stale = await runBin(checkout);
  t.equal(stale.code, 1);
  t.equal(stale.stderr, "gatehouse: dist/ is older than src/cli/main.ts: run `npm run build`\n");
  t.equal(stale.stdout, "", "the old build did not run");

  utimesSync(stamp, now + 1, now + 1);
  const current = await runBin(checkout);
  t.equal(current.code, 0, current.stderr);
  t.equal(current.stdout, "compiled\n", "a current build runs");
});
