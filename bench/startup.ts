/**
 * Start-up, CLI and memory (docs/PERFORMANCE.md, "Start-up, CLI and memory"):
 * for one checkout or several (`--root DIR`, repeatable; runs interleaved, so
 * that a shared machine's noise falls on each alike), on a throwaway SQLite
 * database that is migrated and has its signing keys before anything is timed:
 *
 * - start to ready: from spawning the server to its "gatehouse is ready" log
 *   line, and the CPU time (user + system, all threads; proc(5) stat) it used
 *   until then;
 * - `gatehouse clients list`, `users create --password-stdin` and `clients
 *   create`, each from spawn to exit;
 * - VmRSS (proc(5) status) of idle servers 5 s and 40 s after ready.
 *
 * The server command is `node dist/server.js` when the checkout has a dist/,
 * else `node --import tsx src/server.ts` (checkouts from before the build);
 * the CLI is `node bin/gatehouse.js`. Usage:
 *   npm run bench:startup [-- --runs 9] [-- --root /tmp/old --root .]
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { freePort } from "../test/helpers/processes.ts";
import { residentKiB, root as repoRoot } from "./servers.ts";

interface Checkout {
  root: string;
  server: string[];
  env: Record<string, string>;
  dir: string;
  start: number[];
  cpu: number[];
  list: number[];
  usersCreate: number[];
  clientsCreate: number[];
  rss5: number[];
  rss40: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU time of a process so far, in ms: utime + stime (proc(5), /proc/<pid>/stat fields 14 and 15, in clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function cli(c: Checkout, args: string[], stdin = ""): number {
  const t0 = performance.now();
  const result = spawnSync(process.execPath, [join(c.root, "bin/gatehouse.js"), ...args], { cwd: c.root, env: c.env, input: stdin });
  if (result.status !== 0) throw new Error(`${c.root}: gatehouse ${args.join(" ")} exited with ${result.status}: ${result.stderr}`);
  return performance.now() - t0;
}

async function start(c: Checkout): Promise<{ child: ChildProcess; ms: number; cpu: number }> {
  const port = await freePort();
  return new Promise((resolveStart, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, c.server, { cwd: c.root, env: { ...c.env, PORT: String(port) } });
    let output = "";
    const onExit = (code: number | null) => reject(new Error(`${c.root}: the server exited with ${code}: ${output}`));
    child.stdout!.on("data", (d) => {
      output += d;
      if (output.includes("gatehouse is ready")) {
        child.off("exit", onExit);
        resolveStart({ child, ms: performance.now() - t0, cpu: cpuMs(child.pid!) });
      }
    });
    child.stderr!.on("data", (d) => (output += d));
    child.on("exit", onExit);
  });
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.on("exit", r));
  child.kill("SIGTERM");
  await exited;
}

const { values } = parseArgs({ options: { root: { type: "string", multiple: true }, runs: { type: "string" } } });
const runs = Number(values.runs ?? 7);
const checkouts: Checkout[] = (values.root ?? [repoRoot]).map((r) => {
  const root = resolve(r);
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-startup-"));
  const compiled = existsSync(join(root, "dist/server.js"));
  return {
    root,
    server: compiled ? [join(root, "dist/server.js")] : ["--import", "tsx", join(root, "src/server.ts")],
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", DATABASE_URL: `file:${join(dir, "db.sqlite")}`, KEYS_DIR: join(dir, "keys"), LOG_LEVEL: "info" },
    dir,
    start: [], cpu: [], list: [], usersCreate: [], clientsCreate: [], rss5: [], rss40: [],
  };
});

try {
  for (const c of checkouts) {
    cli(c, ["migrate"]);
    await stop((await start(c)).child); // the first start creates the signing keys
  }
  for (let i = 0; i < runs; i++) {
    for (const c of checkouts) {
      const s = await start(c);
      c.start.push(s.ms);
      c.cpu.push(s.cpu);
      await sleep(300);
      await stop(s.child);
    }
  }
  for (let i = 0; i < runs; i++) {
    for (const c of checkouts) {
      c.list.push(cli(c, ["clients", "list"]));
      c.usersCreate.push(cli(c, ["users", "create", "--email", `startup-${i}-${Date.now()}@example.test`, "--password-stdin"], `correct horse battery staple ${i}`));
      c.clientsCreate.push(cli(c, ["clients", "create", "--name", "Start-up", "--redirect-uri", "https://rp.example/cb"]));
    }
  }
  const idle: [Checkout, ChildProcess][] = [];
  for (let i = 0; i < 2; i++) for (const c of checkouts) idle.push([c, (await start(c)).child]);
  await sleep(5_000);
  for (const [c, child] of idle) c.rss5.push(residentKiB(child.pid!) ?? NaN);
  await sleep(35_000);
  for (const [c, child] of idle) c.rss40.push(residentKiB(child.pid!) ?? NaN);
  for (const [, child] of idle) await stop(child);
} finally {
  for (const c of checkouts) rmSync(c.dir, { recursive: true, force: true });
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const ms = (a: number[]) => `${median(a).toFixed(0)} (${Math.min(...a).toFixed(0)}–${Math.max(...a).toFixed(0)})`;
const mib = (a: number[]) => a.map((k) => (k / 1024).toFixed(0)).join(", ");
console.log(`${runs} runs each; ms as median (min–max); VmRSS of two servers each, MiB\n`);
console.log("| Checkout | Server | Start to ready, ms | CPU until ready, ms | clients list, ms | users create, ms | clients create, ms | VmRSS 5 s after ready | VmRSS 40 s after ready |");
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|");
for (const c of checkouts) {
  const server = c.server.map((a) => a.replace(`${c.root}/`, "")).join(" ");
  console.log(`| ${c.root} | \`node ${server}\` | ${ms(c.start)} | ${ms(c.cpu)} | ${ms(c.list)} | ${ms(c.usersCreate)} | ${ms(c.clientsCreate)} | ${mib(c.rss5)} | ${mib(c.rss40)} |`);
}
