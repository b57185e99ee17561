/**
 * The email worker: each instance sends what is queued in the outbox
 * (docs/email.md). It wakes when this process queues a message (after the
 * commit), when a retry falls due, and every EMAIL_POLL_INTERVAL (for
 * messages queued by another instance or the CLI). Due rows are claimed by
 * compare-and-set (db/email-outbox.ts), so instances never send one message
 * twice; a sender that dies leaves its lease to expire, and the row is tried
 * again. Delivery is therefore at least once: a crash between the SMTP
 * server's acceptance and the commit of `sent` sends it again, with the same
 * Message-ID (RFC 5322 section 3.6.4) so that clients can tell.
 *
 * smtp mode: one pooled nodemailer transport from SMTP_URL. Links and bodies
 * are never logged: they may carry single-use tokens. files mode
 * (development): each message becomes `<id>.eml` (0600) in the outbox
 * folder and its links are logged at info level, so every flow can be tried
 * without a mail server.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Transporter } from "nodemailer";
import type { FastifyBaseLogger } from "fastify";
import type { Config } from "../config.ts";
import { transaction, type Database } from "../db/transaction.ts";
import {
  claimDueEmails,
  markEmailFailed,
  markEmailRetry,
  markEmailSent,
  releaseEmailClaim,
  type EmailClaim,
  type EmailOutboxRow,
} from "../db/email-outbox.ts";
import { appendAuditEvent } from "../services/audit.ts";
import { hashAuditEmail } from "../services/sign-in.ts";
import { linksIn } from "./messages.ts";
import { onEmailQueued } from "./outbox.ts";

/** Attempts before a message is given up: with the backoff below, about a day. */
export const maxEmailAttempts = 30;
/** Longest wait between two attempts. */
const maxRetryDelayMs = 60 * 60 * 1000;
/** A sender's lease on a claimed row: well above the SMTP timeouts below, so a live sender never loses it. */
const leaseMs = 5 * 60 * 1000;
const batchSize = 10;

export type EmailOutcome = "sent" | "retry" | "failed";

export interface EmailWorker {
  /** One round now: sends every due message. Concurrent calls share one round. */
  runOnce(): Promise<void>;
  /** Asks for a round soon (coalesced). */
  nudge(): void;
  /**
   * Stops claiming, gives back the claimed messages not yet tried, and waits
   * up to 5 s for the message in hand before closing the transport (a
   * message cut off there is retried once its lease expires).
   */
  stop(): Promise<void>;
}

export interface EmailWorkerDeps {
  db: Database;
  config: Config;
  log: FastifyBaseLogger;
  /** HMAC key for the recipient's address in audit events of messages to no user (the sign-in audit's "audit-email" key). */
  emailHashKey: string;
  onOutcome?: (outcome: EmailOutcome) => void;
}

/** Sends one rendered message; throws on failure. */
interface Sender {
  send(row: EmailOutboxRow): Promise<void>;
  close(): void;
}

/** The domain of an address or `Name <address>`, for Message-IDs. */
function domainOf(from: string): string {
  return /@([^>\s]+)>?$/.exec(from)?.[1] ?? "localhost";
}

function mailOf(config: Config, row: EmailOutboxRow) {
  return {
    from: config.email.from,
    to: row.to,
    subject: row.subject,
    text: row.text,
    html: row.html,
    // Stable across retries: a message delivered twice carries one id.
    messageId: `<${row.id}@${domainOf(config.email.from)}>`,
    // Automatic mail: no auto-replies, please (RFC 3834 section 5).
    headers: { "Auto-Submitted": "auto-generated" },
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

/**
 * A nodemailer transport made when the first message is sent: nodemailer
 * (about 15 MiB resident) is not loaded by an instance that sends nothing.
 */
function lazyTransport(options: Parameters<typeof import("nodemailer").createTransport>[0]) {
  let made: Promise<Transporter> | undefined;
  return {
    get: () => (made ??= import("nodemailer").then(({ default: nodemailer }) => nodemailer.createTransport(options))),
    close: () => void made?.then((transport) => transport.close()),
  };
}

function smtpSender(config: Config, url: string): Sender {
  const transport = lazyTransport({
    pool: true,
    url,
    maxConnections: 2,
    // nodemailer's defaults wait minutes; a dead server should fail fast and be retried.
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
    logger: false,
  });
  return {
    async send(row) {
      await (await transport.get()).sendMail(mailOf(config, row));
    },
    close: transport.close,
  };
}

function filesSender(config: Config, log: FastifyBaseLogger): Sender {
  const composer = lazyTransport({ streamTransport: true, buffer: true, newline: "unix" });
  return {
    async send(row) {
      const info = await (await composer.get()).sendMail(mailOf(config, row));
      await mkdir(config.email.outboxDir, { recursive: true, mode: 0o700 });
      // The id is a UUID we made: no path can come from the message.
      const file = join(config.email.outboxDir, `${row.id}.eml`);
      await writeFile(file, info.message as Buffer, { mode: 0o600 });
      // Development only (no SMTP_URL outside production): the links are how a
      // developer follows a flow, so they are logged, tokens and all.
      log.info({ outboxId: row.id, kind: row.kind, to: row.to, file, links: linksIn(row.text, config.issuer) }, "email written to a file (SMTP_URL is not set)");
    },
    close: () => composer.close(),
  };
}

/** Why an attempt failed, for the row and the log: error code and SMTP reply, without URLs or control characters. */
export function describeSendError(error: unknown): string {
  const e = (error ?? {}) as { code?: unknown; responseCode?: unknown; response?: unknown; message?: unknown };
  const parts = [e.code, e.responseCode, typeof e.response === "string" ? e.response : typeof e.message === "string" ? e.message : String(error)];
  return parts
    .filter((p) => p !== undefined && p !== null && p !== "")
    .join(" ")
    .replace(/[a-z][a-z0-9+.-]*:\/\/\S+/gi, "[url]")
    .replace(/[\u0000-\u001f\u007f]+/g, " ")
    .slice(0, 300);
}

/** A recipient refused for good (5xx to RCPT TO, RFC 5321 section 4.2.1): retrying cannot help. */
function isPermanent(error: unknown): boolean {
  const e = error as { code?: unknown; responseCode?: unknown };
  return e?.code === "EENVELOPE" && typeof e.responseCode === "number" && e.responseCode >= 500;
}

/** The wait before attempt `attempts + 1`: EMAIL_RETRY_BASE doubled per attempt, at most an hour, with 10% jitter. */
export function retryDelayMs(retryBaseSeconds: number, attempts: number): number {
  const base = Math.min(maxRetryDelayMs, retryBaseSeconds * 1000 * 2 ** Math.min(attempts - 1, 20));
  return Math.round(base * (0.9 + Math.random() * 0.2));
}

/** Starts the worker of one instance (app.ts; stopped when the app closes). Not started when email is off. */
export function startEmailWorker({ db, config, log, emailHashKey, onOutcome }: EmailWorkerDeps): EmailWorker {
  if (config.email.mode === "off") throw new Error("email is off: no worker to start");
  const sender = config.email.mode === "smtp" ? smtpSender(config, config.email.smtpUrl!) : filesSender(config, log);
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;
  let nudgeTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;

  const audit = (row: EmailOutboxRow, type: "email.sent" | "email.failed", data: Record<string, unknown>) => ({
    type,
    actorType: "system" as const,
    userId: row.userId,
    // Never the link or the body; the address only as a keyed hash when no user is named.
    data: { outbox_id: row.id, kind: row.kind, attempts: row.attempts, ...(row.userId ? {} : { to_hash: hashAuditEmail(emailHashKey, row.to.toLowerCase()) }), ...data },
  });

  /** When this process's failed messages fall due: the timer wakes the worker at the earliest, then re-arms. */
  const retryTimes: number[] = [];
  const armRetryTimer = () => {
    clearTimeout(retryTimer);
    if (stopped || retryTimes.length === 0) return;
    const at = retryTimes.reduce((a, b) => Math.min(a, b));
    retryTimer = setTimeout(() => {
      const now = Date.now();
      for (let i = retryTimes.length - 1; i >= 0; i--) if (retryTimes[i]! <= now) retryTimes.splice(i, 1);
      nudge();
      armRetryTimer();
    }, Math.max(0, at - Date.now()));
    retryTimer.unref();
  };
  const scheduleRetry = (at: number) => {
    retryTimes.push(at);
    armRetryTimer();
  };

  const deliver = async (row: EmailOutboxRow) => {
    const claim: EmailClaim = { id: row.id, attempts: row.attempts };
    try {
      await sender.send(row);
    } catch (error) {
      const reason = describeSendError(error);
      if (row.attempts >= maxEmailAttempts || isPermanent(error)) {
        const marked = await transaction(db, async (tx) => {
          if (!(await markEmailFailed(tx, claim, reason))) return false;
          // The SMTP reply may quote the address, which the audit keeps only hashed.
          await appendAuditEvent(tx, db, audit(row, "email.failed", { error: reason.replace(/[^\s<>]+@[^\s<>]+/g, "[address]") }));
          return true;
        });
        if (marked) {
          onOutcome?.("failed");
          log.error({ outboxId: row.id, kind: row.kind, attempts: row.attempts, error: reason }, "email given up");
        }
        return;
      }
      const next = Date.now() + retryDelayMs(config.email.retryBase, row.attempts);
      if (await markEmailRetry(db, claim, new Date(next), reason)) {
        onOutcome?.("retry");
        log.warn({ outboxId: row.id, kind: row.kind, attempts: row.attempts, error: reason, nextAttemptAt: new Date(next).toISOString() }, "email not sent: will retry");
        scheduleRetry(next);
      }
      return;
    }
    const marked = await transaction(db, async (tx) => {
      if (!(await markEmailSent(tx, claim))) return false;
      await appendAuditEvent(tx, db, audit(row, "email.sent", {}));
      return true;
    });
    if (marked) {
      onOutcome?.("sent");
      if (config.email.mode === "smtp") log.info({ outboxId: row.id, kind: row.kind, attempts: row.attempts }, "email sent");
    } else {
      log.warn({ outboxId: row.id, kind: row.kind }, "email sent, but its claim had expired: another sender may send it again");
    }
  };

  const round = async () => {
    do {
      again = false;
      for (;;) {
        if (stopped) return;
        const claimed = await claimDueEmails(db, { limit: batchSize, leaseMs });
        if (claimed.length === 0) break;
        for (const [i, row] of claimed.entries()) {
          if (stopped) {
            for (const rest of claimed.slice(i)) await releaseEmailClaim(db, { id: rest.id, attempts: rest.attempts });
            return;
          }
          await deliver(row);
        }
      }
    } while (again && !stopped);
  };

  const runOnce = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = round().finally(() => {
      running = undefined;
    });
    return running;
  };

  const safeRun = () => {
    runOnce().catch((error: unknown) => log.error({ err: error }, "email worker round failed: retried at the next poll"));
  };

  function nudge() {
    if (stopped || nudgeTimer) return;
    nudgeTimer = setTimeout(() => {
      nudgeTimer = undefined;
      safeRun();
    }, 10);
    nudgeTimer.unref();
  }

  const unsubscribe = onEmailQueued(db, nudge);
  const timer = setInterval(safeRun, config.email.pollInterval * 1000);
  timer.unref();
  // Whatever was left queued (a restart, an SMTP outage) goes out at start.
  nudge();

  return {
    runOnce,
    nudge,
    async stop() {
      stopped = true;
      unsubscribe();
      clearInterval(timer);
      clearTimeout(nudgeTimer);
      clearTimeout(retryTimer);
      // Bounded: a hung SMTP server must not hold the graceful shutdown (10 s in server.ts).
      let timeout: NodeJS.Timeout | undefined;
      await Promise.race([running?.catch(() => undefined), new Promise((resolve) => (timeout = setTimeout(resolve, 5000)))]);
      clearTimeout(timeout);
      sender.close();
    },
  };
}
