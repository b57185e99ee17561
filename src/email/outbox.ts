/**
 * Queueing email: a message is rendered and written to the outbox table,
 * in the caller's transaction when it has one, so that a change and the
 * email about it are committed together or not at all (the transactional
 * outbox). The worker (worker.ts) sends it later; no request waits on SMTP
 * (docs/email.md).
 */
import { randomUUID } from "node:crypto";
import type { Config } from "../config.ts";
import { afterCommit, type Database, type Tx } from "../db/transaction.ts";
import { insertEmail } from "../db/email-outbox.ts";
import { AppError } from "../errors.ts";
import { checkLink, renderEmail, type EmailMessage } from "./messages.ts";

export interface QueueEmailInput {
  to: string;
  userId?: string | null;
  recipientName?: string | null;
  message: EmailMessage;
}

/** Whether Gatehouse can send email (SMTP, or files outside production). Optional notices check it first. */
export function emailEnabled(config: Config): boolean {
  return config.email.mode !== "off";
}

/**
 * An absolute URL for `path` (which must start with one "/") on the issuer,
 * never on a request's Host header: the only way to build a link for an email.
 */
export function linkTo(config: Config, path: string): string {
  if (!path.startsWith("/") || path.startsWith("//") || /[\s\\]/.test(path)) throw new Error("linkTo: path must start with a single / and hold no spaces or backslashes");
  return checkLink(`${config.issuer}${path}`, config.issuer);
}

// A plain address, checked again here: it goes into the envelope and the To header.
const addressPattern = /^[^\s@"<>()\[\],;:\\]+@[^\s@"<>()\[\],;:\\]+\.[^\s@"<>()\[\],;:\\]+$/;

/** Listeners woken when a message is queued in this process, per database (worker.ts subscribes). */
const queuedListeners = new WeakMap<Database, Set<() => void>>();

/** Calls `listener` whenever queueEmail queues a message on `db` in this process; returns an unsubscribe function. */
export function onEmailQueued(db: Database, listener: () => void): () => void {
  let set = queuedListeners.get(db);
  if (!set) queuedListeners.set(db, (set = new Set()));
  set.add(listener);
  return () => set.delete(listener);
}

/**
 * Renders `input.message` and queues it for `input.to`: inside `tx` when
 * given (committed with the caller's change), on its own otherwise. Throws an
 * AppError when email is off (production without SMTP_URL), and an Error
 * when a link is not under the issuer.
 */
export async function queueEmail(deps: { db: Database; config: Config }, input: QueueEmailInput, tx?: Tx): Promise<void> {
  const { db, config } = deps;
  if (!emailEnabled(config)) throw new AppError("forbidden", "Email is not available on this server (SMTP_URL is not set).");
  const to = input.to.trim();
  if (to.length > 254 || !addressPattern.test(to)) throw new AppError("invalid_request", "invalid email address");
  const rendered = renderEmail(input.message, { issuerName: config.issuerName, issuer: config.issuer, recipientName: input.recipientName ?? null });
  await insertEmail(tx ?? db, { id: randomUUID(), to, userId: input.userId ?? null, kind: input.message.kind, ...rendered });
  // Wake this process's worker once the row is visible: at commit, in a transaction.
  const wake = () => {
    for (const listener of queuedListeners.get(db) ?? []) listener();
  };
  if (tx) afterCommit(tx, wake);
  else wake();
}
