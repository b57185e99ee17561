/**
 * `npm run bench [-- --quick] [-- --pg [--database-url URL]]
 * [-- --baseline-store memory|sqlite] [-- --baseline-host node|fastify]`:
 * Gatehouse against a bare oidc-provider (bench/baseline.ts: oidc-provider's
 * in-memory adapter, or with `--baseline-store sqlite` the SQLite one of
 * bench/baseline-store.ts; served by Node's http server, or with
 * `--baseline-host fastify` mounted in a Fastify app and nothing else),
 * both started here as child processes on 127.0.0.1, scenario by scenario
 * with the runs interleaved (Gatehouse, baseline, Gatehouse, baseline) so
 * that the noise of a shared machine falls on both. Prints a table and writes
 * bench/results/<timestamp>.json. Compare ratios measured in one run, not
 * absolute figures across runs (docs/PERFORMANCE.md).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { loadConfig } from "../src/config.ts";
import { hashPassword, verifyPassword } from "../src/auth/passwords.ts";
import { runLoad, type LoadResult } from "./load.ts";
import { baselineHosts, baselineStores, choiceOf, type BaselineHost, type BaselineStore } from "./baseline-store.ts";
import { createVirtualUser, discoverEndpoints, iterate, multiRequest, prepareRun, scenarioNames, type ScenarioName, type VirtualUser } from "./scenarios.ts";
import { cpuMicros, residentKiB, root, startBaseline, startGatehouse, type RunningServer } from "./servers.ts";

export interface BenchOptions {
  quick: boolean;
  postgresUrl: string | undefined;
  connections: number;
  durationMs: number;
  maxRequests: number;
  rounds: number;
  scenarios: ScenarioName[];
  argon2: boolean;
  /** The baseline's adapter (bench/baseline.ts): in memory (the default) or SQLite rows. */
  baselineStore?: BaselineStore;
  /** What serves the baseline's HTTP (bench/baseline.ts): Node's server (the default) or a bare Fastify app. */
  baselineHost?: BaselineHost;
  /** A folder for a CPU profile of the Gatehouse process (`--cpu-prof`), if wanted. */
  cpuProfileDir?: string | undefined;
}

export interface ScenarioResult {
  scenario: ScenarioName | "argon2_verify";
  unit: "request" | "flow" | "verify";
  gatehouse: LoadResult[];
  baseline: LoadResult[];
  /** Gatehouse's requests/s over the baseline's, runs of both pooled. */
  ratio: number | undefined;
  /** Server CPU time per iteration in microseconds (user + system, /proc), runs pooled; undefined off Linux. */
  cpuMicrosPerIteration?: Record<"gatehouse" | "baseline", number | undefined>;
  /** The baseline's CPU time per iteration over Gatehouse's: the ratio on a core of its own. */
  cpuRatio?: number | undefined;
  /** Gatehouse's SQL statements per iteration (gatehouse_db_statements_total over the runs). */
  statementsPerIteration?: number;
}

export interface BenchReport {
  date: string;
  machine: { cpus: number; model: string; node: string; platform: string };
  options: Omit<BenchOptions, "postgresUrl" | "baselineStore" | "baselineHost"> & { database: "sqlite" | "postgresql"; baselineStore: BaselineStore; baselineHost: BaselineHost };
  results: ScenarioResult[];
  memoryKiB: Record<"gatehouse" | "baseline", { afterStart: number | undefined; afterSetup: number | undefined; atEnd: number | undefined }>;
}

/** Pools the runs of one server: total count over total time; p50/p99 as the mean of the runs' (the raw runs stay in the JSON). */
function pooled(runs: LoadResult[]): { perSecond: number; p50Ms: number; p99Ms: number; errors: number; count: number } {
  const count = runs.reduce((n, r) => n + r.count, 0);
  const ms = runs.reduce((n, r) => n + r.elapsedMs, 0);
  const mean = (f: (r: LoadResult) => number) => (runs.length ? runs.reduce((n, r) => n + f(r), 0) / runs.length : 0);
  return { count, perSecond: ms ? (count / ms) * 1000 : 0, p50Ms: mean((r) => r.p50Ms), p99Ms: mean((r) => r.p99Ms), errors: runs.reduce((n, r) => n + r.errors, 0) };
}

/** Password verifications per second through Gatehouse's own verifyPassword, at the configured argon2 parameters. */
async function benchArgon2(options: BenchOptions): Promise<LoadResult> {
  const env: Record<string, string> = {};
  for (const name of ["ARGON2_MEMORY_KIB", "ARGON2_ITERATIONS", "ARGON2_PARALLELISM"]) if (process.env[name]) env[name] = process.env[name]!;
  const params = loadConfig(env).argon2;
  const password = "correct horse battery staple";
  const hash = await hashPassword(password, params);
  const users = Array.from({ length: Math.min(options.connections, availableParallelism() * 2) }, (_, i) => i);
  return runLoad(
    users,
    async () => {
      if (!(await verifyPassword(hash, password))) throw new Error("argon2: the password did not verify");
    },
    { durationMs: options.durationMs, maxRequests: Math.max(20, Math.floor(options.maxRequests / 50)) },
  );
}

/** Gatehouse's gatehouse_db_statements_total, from its /metrics. */
async function statementCount(server: RunningServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const match = /^gatehouse_db_statements_total (\d+)/m.exec(text);
  if (!match) throw new Error("gatehouse_db_statements_total is missing from /metrics");
  return Number(match[1]);
}

/** Runs every scenario against both servers, interleaved; `log` gets progress lines. */
export async function runBench(options: BenchOptions, log: (line: string) => void = () => {}): Promise<BenchReport> {
  const servers: RunningServer[] = [];
  const memoryKiB: BenchReport["memoryKiB"] = {
    gatehouse: { afterStart: undefined, afterSetup: undefined, atEnd: undefined },
    baseline: { afterStart: undefined, afterSetup: undefined, atEnd: undefined },
  };
  const results: ScenarioResult[] = [];
  const users = new Map<RunningServer, VirtualUser[]>();
  const baselineStore = options.baselineStore ?? "memory";
  const baselineHost = options.baselineHost ?? "node";
  try {
    log(`starting Gatehouse (${options.postgresUrl ? "PostgreSQL" : "SQLite"}) and the baseline (${baselineStore} store, ${baselineHost} host)`);
    const gatehouse = await startGatehouse({ postgresUrl: options.postgresUrl, cpuProfileDir: options.cpuProfileDir });
    servers.push(gatehouse);
    const baseline = await startBaseline({ store: baselineStore, host: baselineHost });
    servers.push(baseline);
    for (const server of servers) {
      memoryKiB[server.name].afterStart = residentKiB(server.pid);
      const endpoints = await discoverEndpoints(server);
      const vus: VirtualUser[] = [];
      // One code flow per virtual user, one at a time: each user gets its own grant and refresh chain.
      for (let i = 0; i < options.connections; i++) vus.push(await createVirtualUser(server, endpoints));
      users.set(server, vus);
      memoryKiB[server.name].afterSetup = residentKiB(server.pid);
    }

    for (const scenario of options.scenarios) {
      const result: ScenarioResult = { scenario, unit: multiRequest.has(scenario) ? "flow" : "request", gatehouse: [], baseline: [], ratio: undefined };
      let statements = 0;
      const cpu = { gatehouse: 0, baseline: 0 };
      let cpuKnown = true;
      for (let round = 0; round < options.rounds; round++) {
        for (const server of servers) {
          await prepareRun(scenario, users.get(server)!, options, result[server.name].at(-1)?.perSecond);
          const before = server.name === "gatehouse" ? await statementCount(server) : 0;
          const cpuBefore = cpuMicros(server.pid);
          const run = await runLoad(users.get(server)!, (vu) => iterate(scenario, vu), options);
          const cpuAfter = cpuMicros(server.pid);
          if (cpuBefore === undefined || cpuAfter === undefined) cpuKnown = false;
          else cpu[server.name] += cpuAfter - cpuBefore;
          if (server.name === "gatehouse") statements += (await statementCount(server)) - before;
          result[server.name].push(run);
          // Short of both its duration and its request budget: its users ran out of prepared work.
          const short = run.elapsedMs < options.durationMs * 0.9 && run.count < options.maxRequests ? " (ended early: no prepared work left)" : "";
          log(`${scenario.padEnd(18)} ${server.name.padEnd(9)} ${run.perSecond.toFixed(0).padStart(6)}/s p50 ${run.p50Ms.toFixed(1)} ms p99 ${run.p99Ms.toFixed(1)} ms errors ${run.errors}${run.firstError ? ` (${run.firstError})` : ""}${short}`);
        }
      }
      const g = pooled(result.gatehouse).perSecond;
      const b = pooled(result.baseline).perSecond;
      result.ratio = b ? g / b : undefined;
      const iterations = result.gatehouse.reduce((n, r) => n + r.count, 0);
      result.statementsPerIteration = iterations ? statements / iterations : undefined;
      if (cpuKnown) {
        const per = (name: "gatehouse" | "baseline") => {
          const count = result[name].reduce((n, r) => n + r.count, 0);
          return count ? cpu[name] / count : undefined;
        };
        result.cpuMicrosPerIteration = { gatehouse: per("gatehouse"), baseline: per("baseline") };
        const { gatehouse: gc, baseline: bc } = result.cpuMicrosPerIteration;
        result.cpuRatio = gc && bc ? bc / gc : undefined;
      }
      results.push(result);
    }
    for (const server of servers) memoryKiB[server.name].atEnd = residentKiB(server.pid);
  } finally {
    for (const vus of users.values()) for (const vu of vus) vu.conn.close();
    for (const server of servers.reverse()) await server.stop();
  }

  if (options.argon2) {
    log("argon2 verify, in this process");
    const run = await benchArgon2(options);
    results.push({ scenario: "argon2_verify", unit: "verify", gatehouse: [run], baseline: [], ratio: undefined });
  }

  return {
    date: new Date().toISOString(),
    machine: { cpus: availableParallelism(), model: cpus()[0]?.model ?? "unknown", node: process.version, platform: `${process.platform} ${process.arch}` },
    options: { ...options, postgresUrl: undefined, database: options.postgresUrl ? "postgresql" : "sqlite", baselineStore, baselineHost } as BenchReport["options"],
    results,
    memoryKiB,
  };
}

/** The report as a Markdown table (also what the command prints). */
export function formatTable(report: BenchReport): string {
  const f = (n: number, digits = 0) => n.toFixed(digits);
  const opt = (n: number | undefined, digits = 0) => (n === undefined ? "-" : f(n, digits));
  const lines = [
    "| Scenario | Unit | Gatehouse /s | p50 ms | p99 ms | errors | SQL /unit | CPU µs /unit | Baseline /s | p50 ms | p99 ms | errors | CPU µs /unit | Ratio G/B | CPU ratio B/G |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of report.results) {
    const g = pooled(r.gatehouse);
    const b = r.baseline.length ? pooled(r.baseline) : undefined;
    lines.push(
      `| ${r.scenario} | ${r.unit} | ${f(g.perSecond)} | ${f(g.p50Ms, 1)} | ${f(g.p99Ms, 1)} | ${g.errors}/${g.count} | ` +
        `${r.statementsPerIteration === undefined ? "-" : f(r.statementsPerIteration, 1)} | ${opt(r.cpuMicrosPerIteration?.gatehouse)} | ` +
        (b
          ? `${f(b.perSecond)} | ${f(b.p50Ms, 1)} | ${f(b.p99Ms, 1)} | ${b.errors}/${b.count} | ${opt(r.cpuMicrosPerIteration?.baseline)} | ${opt(r.ratio, 2)} | ${opt(r.cpuRatio, 2)} |`
          : "- | - | - | - | - | - | - |"),
    );
  }
  // The password sign-in flow against argon2 alone: what is left once the
  // password hash itself is paid for.
  const flow = report.results.find((r) => r.scenario === "code_flow");
  const argon2 = report.results.find((r) => r.scenario === "argon2_verify");
  if (flow && argon2) {
    const ratio = pooled(flow.gatehouse).perSecond / pooled(argon2.gatehouse).perSecond;
    lines.push("", `Password sign-in flows (code_flow) per second over argon2 verifications per second: ${f(ratio, 2)}`);
  }
  const mib = (k: number | undefined) => (k === undefined ? "?" : `${(k / 1024).toFixed(0)} MiB`);
  lines.push("");
  lines.push("| Resident memory (VmRSS) | after start | after setup | at end |", "|---|---:|---:|---:|");
  for (const name of ["gatehouse", "baseline"] as const) {
    const m = report.memoryKiB[name];
    lines.push(`| ${name} | ${mib(m.afterStart)} | ${mib(m.afterSetup)} | ${mib(m.atEnd)} |`);
  }
  return lines.join("\n");
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      pg: { type: "boolean", default: false },
      "database-url": { type: "string" },
      connections: { type: "string" },
      duration: { type: "string" },
      rounds: { type: "string" },
      scenario: { type: "string", multiple: true },
      "no-argon2": { type: "boolean", default: false },
      "cpu-prof": { type: "string" },
      "baseline-store": { type: "string", default: "memory" },
      "baseline-host": { type: "string", default: "node" },
    },
  });
  const baselineStore = choiceOf("--baseline-store", values["baseline-store"]!, baselineStores);
  const baselineHost = choiceOf("--baseline-host", values["baseline-host"]!, baselineHosts);
  const postgresUrl = values.pg ? (values["database-url"] ?? process.env.TEST_DATABASE_URL) : undefined;
  if (values.pg && !postgresUrl) throw new Error("--pg needs --database-url URL or TEST_DATABASE_URL (a server where a throwaway database can be created)");
  const scenarios = (values.scenario ?? [...scenarioNames]) as ScenarioName[];
  for (const s of scenarios) if (!scenarioNames.includes(s)) throw new Error(`unknown scenario ${s} (known: ${scenarioNames.join(", ")})`);
  return {
    quick: values.quick!,
    postgresUrl,
    connections: Number(values.connections ?? 8),
    // --quick: 8 scenarios x 2 rounds x 2 servers x 2 s, plus setup and code_exchange's codes, stays under 2 minutes.
    durationMs: Number(values.duration ?? (values.quick ? 2 : 10)) * 1000,
    maxRequests: values.quick ? 20_000 : 200_000,
    rounds: Number(values.rounds ?? 2),
    scenarios,
    argon2: !values["no-argon2"],
    cpuProfileDir: values["cpu-prof"],
    baselineStore,
    baselineHost,
  };
}

// Run as a command (npm run bench), not imported (the smoke test).
const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  let options: BenchOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const report = await runBench(options, (line) => process.stderr.write(`${line}\n`));
  const dir = join(root, "bench/results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${report.date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\n${formatTable(report)}\n\nMachine: ${report.machine.cpus} CPUs (${report.machine.model}), Node ${report.machine.node}; database ${report.options.database}; baseline store ${report.options.baselineStore}, host ${report.options.baselineHost}.\nJSON: ${file}\n`);
}
