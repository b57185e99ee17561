/**
 * Prometheus metrics (README, "Production"): requests by route and status, their
 * durations, sign-ins by outcome, tokens issued by grant type, and refresh
 * token reuse, and SQL statements sent. One registry per app, so tests can build several apps.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface Metrics {
  registry: Registry;
  requests: Counter<"method" | "route" | "status">;
  requestDuration: Histogram<"method" | "route">;
  signIns: Counter<"method" | "outcome">;
  tokensIssued: Counter<"grant_type">;
  refreshTokenReuse: Counter;
  clientAuthFailures: Counter<"endpoint">;
  /** Email send attempts by outcome: sent, retry (failed, queued again), failed (given up). */
  emails: Counter<"outcome">;
}

/** `statements`: the database's statement count (Database.statements), exported as gatehouse_db_statements_total. */
export function createMetrics(statements?: () => number): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "gatehouse_process_" });
  if (statements) {
    new Counter({
      name: "gatehouse_db_statements_total",
      help: "SQL statements sent to the database, transaction control included",
      registers: [registry],
      collect() {
        this.reset();
        this.inc(statements());
      },
    });
  }
  return {
    registry,
    requests: new Counter({
      name: "gatehouse_http_requests_total",
      help: "HTTP requests by route and status",
      labelNames: ["method", "route", "status"],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: "gatehouse_http_request_duration_seconds",
      help: "HTTP request durations by route",
      labelNames: ["method", "route"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    signIns: new Counter({
      name: "gatehouse_sign_ins_total",
      help: "Sign-in attempts by method and outcome",
      labelNames: ["method", "outcome"],
      registers: [registry],
    }),
    tokensIssued: new Counter({
      name: "gatehouse_tokens_issued_total",
      help: "Token endpoint successes by grant type",
      labelNames: ["grant_type"],
      registers: [registry],
    }),
    refreshTokenReuse: new Counter({
      name: "gatehouse_refresh_token_reuse_total",
      help: "Rotated-out refresh tokens presented again (each revoked its grant)",
      registers: [registry],
    }),
    clientAuthFailures: new Counter({
      name: "gatehouse_client_auth_failures_total",
      help: "Failed client authentications (invalid_client) by endpoint; the reason is in the info log",
      labelNames: ["endpoint"],
      registers: [registry],
    }),
    emails: new Counter({
      name: "gatehouse_emails_total",
      help: "Email send attempts by outcome: sent, retry (failed and queued again), failed (given up)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
  };
}
