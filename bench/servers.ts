/**
 * Starts the two servers the benchmark compares, as child processes on
 * 127.0.0.1: Gatehouse (dist/server.js, the compiled entry point that
 * production runs, on a throwaway SQLite or PostgreSQL database prepared with
 * the real CLI) and the baseline (bench/baseline.ts). Also reads a process's
 * resident memory.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { freePort, runCli as runCliProcess, serverArgs } from "../test/helpers/processes.ts";
import type { BaselineHost, BaselineStore } from "./baseline-store.ts";

export const root = fileURLToPath(new URL("..", import.meta.url));

/** Never fetched: the authorization code flow stops at the redirect to it. */
export const redirectUri = "http://127.0.0.1:9/cb";
export const benchScope = "openid email offline_access";
/** What code_exchange asks for: granted already, so the session answers without consent. */
export const benchSessionScope = "openid email";

export interface BenchClient {
  clientId: string;
  clientSecret: string;
}

export interface BenchUser {
  email: string;
  password: string;
}

export interface RunningServer {
  name: "gatehouse" | "baseline";
  url: string;
  pid: number;
  client: BenchClient;
  /** Set for Gatehouse only: the baseline's interaction signs in without a form. */
  user: BenchUser | undefined;
  stop(): Promise<void>;
}

/** Resident set size of a process in KiB (VmRSS in /proc/<pid>/status, proc(5)), or undefined off Linux. */
/**
 * CPU time (user + system, all threads) a process has used so far, in
 * microseconds, from /proc/PID/stat (proc(5): utime and stime, fields 14 and
 * 15, in clock ticks of 1/100 s on Linux). Unlike requests per second, CPU
 * time per request barely moves when other work shares the machine.
 */
export function cpuMicros(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

export function residentKiB(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The environment of a child: PATH and HOME only, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: "warn", ...env };
}

/** `gatehouse ...args`, as the tests run it; its stdout, or an error naming the exit code and stderr. */
async function runCli(args: string[], env: Record<string, string>, stdin = ""): Promise<string> {
  const result = await runCliProcess(args, { ...env, LOG_LEVEL: "warn" }, stdin);
  if (result.code !== 0) throw new Error(`gatehouse ${args.join(" ")} exited with ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** Spawns `args` and waits until `readyPath` answers 200. */
async function startChild(args: string[], env: Record<string, string>, url: string, readyPath: string): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, args, { cwd: root, env: childEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${args.join(" ")} exited with ${child.exitCode}: ${output}`);
    try {
      if ((await fetch(`${url}${readyPath}`)).status === 200) return { child, stop };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`${args.join(" ")} did not become ready: ${output}`);
}

/** A throwaway database: a SQLite file, or a fresh database on the PostgreSQL server at `postgresUrl`. */
async function createDatabase(postgresUrl: string | undefined): Promise<{ url: string; drop(): Promise<void> }> {
  if (!postgresUrl) {
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-bench-"));
    return { url: `file:${join(dir, "bench.db")}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `gatehouse_bench_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: postgresUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(postgresUrl);
  u.pathname = `/${name}`;
  return {
    url: u.href,
    async drop() {
      const c = new pg.Client({ connectionString: postgresUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/**
 * Gatehouse from dist/server.js (`npm run bench` builds it first when stale)
 * on a fresh database: migrated, one client (authorization_code,
 * refresh_token, client_credentials; client_secret_basic) and one user
 * created with the `gatehouse` CLI before the server starts.
 * Rate limits are raised out of the way: the benchmark sends thousands of
 * requests a second from one address, and its virtual users sign in as one
 * account concurrently (the per-account limiter counts attempts in flight).
 */
export async function startGatehouse(options: { postgresUrl?: string; cpuProfileDir?: string } = {}): Promise<RunningServer> {
  const database = await createDatabase(options.postgresUrl);
  const keysDir = mkdtempSync(join(tmpdir(), "gatehouse-bench-keys-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = {
    DATABASE_URL: database.url,
    KEYS_DIR: keysDir,
    ISSUER: url,
    PORT: String(port),
    HOST: "127.0.0.1",
    TOKEN_RATE_LIMIT_PER_IP: "10000000",
    TOKEN_RATE_LIMIT_PER_CLIENT: "10000000",
    AUTH_RATE_LIMIT_PER_IP: "10000000",
    SIGNIN_MAX_FAILURES_PER_IP: "100000",
    SIGNIN_MAX_FAILURES: "1000",
  };
  try {
    await runCli(["migrate"], env);
    const created = JSON.parse(
      await runCli(
        ["clients", "create", "--name", "Benchmark", "--redirect-uri", redirectUri, "--grant-types", "authorization_code,refresh_token,client_credentials", "--scope", "openid profile email offline_access", "--token-endpoint-auth-method", "client_secret_basic"],
        env,
      ),
    ) as { client_id: string; client_secret: string };
    const user = { email: "bench@example.test", password: `bench-${randomBytes(12).toString("hex")}` };
    await runCli(["users", "create", "--email", user.email, "--password-stdin"], env, user.password);
    // --cpu-prof writes a .cpuprofile when the process exits (Node.js CLI docs), which server.ts does on SIGTERM.
    const profile = options.cpuProfileDir ? ["--cpu-prof", "--cpu-prof-dir", options.cpuProfileDir] : [];
    const { child, stop } = await startChild([...profile, ...serverArgs()], env, url, "/readyz");
    return {
      name: "gatehouse",
      url,
      pid: child.pid!,
      client: { clientId: created.client_id, clientSecret: created.client_secret },
      user,
      async stop() {
        await stop();
        rmSync(keysDir, { recursive: true, force: true });
        await database.drop();
      },
    };
  } catch (error) {
    rmSync(keysDir, { recursive: true, force: true });
    await database.drop();
    throw error;
  }
}

/**
 * The bare oidc-provider of bench/baseline.ts with the same client metadata
 * as Gatehouse's; `store` picks its adapter (BENCH_STORE): oidc-provider's
 * in-memory one (the default) or the SQLite one of bench/baseline-store.ts;
 * `host` what serves its HTTP (BENCH_HOST): Node's server or a bare Fastify app.
 */
export async function startBaseline(options: { store?: BaselineStore; host?: BaselineHost } = {}): Promise<RunningServer> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const client = { clientId: "bench-client", clientSecret: randomBytes(32).toString("base64url") };
  const metadata = {
    client_id: client.clientId,
    client_secret: client.clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ["authorization_code", "refresh_token", "client_credentials"],
    response_types: ["code"],
    scope: "openid profile email offline_access",
    token_endpoint_auth_method: "client_secret_basic",
    id_token_signed_response_alg: "RS256",
  };
  const { child, stop } = await startChild(
    ["--import", "tsx", join(root, "bench/baseline.ts")],
    { PORT: String(port), BENCH_CLIENT: JSON.stringify(metadata), BENCH_STORE: options.store ?? "memory", BENCH_HOST: options.host ?? "node" },
    url,
    "/.well-known/openid-configuration",
  );
  return { name: "baseline", url, pid: child.pid!, client, user: undefined, stop };
}
