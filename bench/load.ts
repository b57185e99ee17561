/**
 * A small closed-loop load generator: `connections` virtual users, each with
 * its own keep-alive connection and state (a refresh token chain, a cookie
 * jar), sending one request at a time until a request count or a duration is
 * reached, whichever comes first. Chosen over a generic tool because several
 * scenarios are stateful per user (refresh rotation, the code flow).
 */
import { Agent, request as httpRequest } from "node:http";

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface HttpRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** One virtual user's connection: a keep-alive agent with a single socket. */
export class Connection {
  readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });

  /** Sends one request and reads the whole body. */
  send(url: string | URL, init: HttpRequest = {}): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(url, { method: init.method ?? "GET", headers: init.headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(init.body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface LoadOptions {
  connections: number;
  durationMs: number;
  maxRequests: number;
}

export interface LoadResult {
  /** Completed iterations (requests, or flows for multi-request scenarios). */
  count: number;
  /** Iterations that threw or answered outside 2xx (or the scenario's expected status). */
  errors: number;
  firstError: string | undefined;
  elapsedMs: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** What an iteration returns when its user has no work left for this run. */
export const userDone = Symbol("user done");

/**
 * Runs `iteration(vu)` in a closed loop on every virtual user until the
 * budget is spent, or until the user's iteration answers `userDone` (that
 * call is not counted). An iteration that throws counts as an error.
 */
export async function runLoad<S>(
  users: S[],
  iteration: (user: S) => Promise<void | typeof userDone>,
  options: Omit<LoadOptions, "connections">,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let started = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const deadline = start + options.durationMs;
  await Promise.all(
    users.map(async (user) => {
      while (started < options.maxRequests && performance.now() < deadline) {
        started += 1;
        const t0 = performance.now();
        try {
          if ((await iteration(user)) === userDone) {
            started -= 1;
            break;
          }
        } catch (error) {
          errors += 1;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsedMs = performance.now() - start;
  latencies.sort((a, b) => a - b);
  return {
    count: latencies.length,
    errors,
    firstError,
    elapsedMs,
    perSecond: (latencies.length / elapsedMs) * 1000,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
  };
}
