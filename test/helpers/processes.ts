/**
 * Runs Gatehouse's real entry points as child processes, as production runs
 * them: the compiled server (dist/server.js) and the CLI (bin/gatehouse.js,
 * which runs dist/cli/main.js), with no TypeScript loader. tap builds dist/
 * before the tests (test/helpers/build-dist.ts).
 */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Test } from "tap";
import { staleBuildReason } from "../../scripts/build-state.mjs";

export const root = fileURLToPath(new URL("../..", import.meta.url));

/**
 * The arguments that start the compiled server: `node ...serverArgs()`.
 * Throws when dist/ is missing or older than src/, so that no test runs old
 * code (tap builds it first; a test file run some other way may not have).
 */
export function serverArgs(): string[] {
  const stale = staleBuildReason(root);
  if (stale) throw new Error(`${stale}: run \`npm run build\` (tap runs it before the tests)`);
  return [join(root, "dist/server.js")];
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Base environment for child processes: no inherited Gatehouse settings. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: "warn" };
  return { ...base, ...env };
}

/** What a child process wrote and how it exited, once it has (stdin is fed `stdin`, then closed). */
export function outcomeOf(child: ChildProcessWithoutNullStreams, stdin = ""): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** Runs `gatehouse ...args` with `env`, feeding `stdin`. */
export function runCli(args: string[], env: Record<string, string>, stdin = ""): Promise<RunResult> {
  return outcomeOf(spawn(process.execPath, [join(root, "bin/gatehouse.js"), ...args], { cwd: root, env: childEnv(env) }), stdin);
}

/** `gatehouse audit verify [args]` against an app's database and keys, with its JSON output parsed. */
export async function runAuditVerify(config: { databaseUrl: string; keysDir: string }, ...args: string[]): Promise<RunResult & { json: Record<string, unknown> | undefined }> {
  const res = await runCli(["audit", "verify", ...args], { DATABASE_URL: config.databaseUrl, KEYS_DIR: config.keysDir });
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(res.stdout) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { ...res, json };
}

export interface PortReservation {
  port: number;
  /** Frees the port: call it just before listening on it. */
  release(): Promise<void>;
}

/**
 * A free TCP port on 127.0.0.1, held (listened on) until released. Hold it
 * while what will listen on it is built: a port given back early can be
 * taken meanwhile by another test file's server or by an outgoing
 * connection's local port, and the listen then fails with EADDRINUSE.
 */
export function reservePort(): Promise<PortReservation> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (typeof address !== "object" || !address) return reject(new Error("no port"));
      resolve({ port: address.port, release: () => new Promise<void>((done) => server.close(() => done())) });
    });
  });
}

/** A free TCP port on 127.0.0.1, given back at once (for a child process to listen on). */
export async function freePort(): Promise<number> {
  const reservation = await reservePort();
  await reservation.release();
  return reservation.port;
}

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the compiled server on a free port and waits until /readyz answers 200.
 * `issuerHost` "localhost" gives an issuer WebAuthn accepts (an RP ID cannot be an IP address).
 * The port is given back before the child listens on it (its ISSUER names
 * it), so something else may take it meanwhile: a child that exits with
 * EADDRINUSE is started again on another port. `port` is the first port
 * tried (for a test of that retry).
 */
export interface ServerOptions {
  issuerHost?: "127.0.0.1" | "localhost";
  /** The first port tried; a free one when not given. */
  port?: number;
}

export async function startServer(t: Test, env: Record<string, string>, { port, ...options }: ServerOptions = {}): Promise<ServerProcess> {
  for (let attempt = 1; ; attempt++) {
    const server = await startServerOnce(t, env, { ...options, port: attempt === 1 ? port : undefined });
    if (typeof server !== "string") return server;
    if (attempt === 3) throw new Error(`server could not listen: its port was taken three times: ${server}`);
  }
}

/** One start: the server, or, when its port was taken, what the child wrote. */
async function startServerOnce(t: Test, env: Record<string, string>, { issuerHost = "127.0.0.1", port: given }: ServerOptions): Promise<ServerProcess | string> {
  const port = given ?? (await freePort());
  const url = `http://${issuerHost}:${port}`;
  // Without SMTP_URL the server writes email as files: into a throwaway folder, not the checkout's ./data/outbox.
  const outboxDir = mkdtempSync(join(tmpdir(), "gatehouse-outbox-"));
  const child = spawn(process.execPath, serverArgs(), {
    cwd: root,
    env: childEnv({ PORT: String(port), ISSUER: url, EMAIL_OUTBOX_DIR: outboxDir, ...env }),
  });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  // "close", not "exit": by then everything the child wrote has been read.
  let closed = false;
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      closed = true;
      resolve(code);
    }),
  );
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  // After the server has stopped (tap runs teardowns last-added first).
  t.teardown(() => rmSync(outboxDir, { recursive: true, force: true }));
  t.teardown(() => stop());

  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (closed) {
      if (output.includes("EADDRINUSE")) return output;
      throw new Error(`server exited with ${child.exitCode}: ${output}`);
    }
    try {
      // Bounded: whatever else holds the port may accept and never answer.
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return { url, child, output: () => output, stop };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`server did not become ready: ${output}`);
}
