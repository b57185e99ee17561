/**
 * Reading what Gatehouse queued in its email outbox (the EmailOutbox table):
 * the tests of the email flows take their links from there, as a person
 * would from the message.
 */
import type { Database } from "../../src/db/database.ts";
import { afterAnswerJitterMs } from "../../src/account/lifecycle-routes.ts";

export interface QueuedEmail {
  to: string;
  kind: string;
  subject: string;
  text: string;
  createdAt: Date;
}

/** Messages queued for `to` (optionally of one kind), oldest first. */
export async function queuedEmails(db: Database, to: string, kind?: string): Promise<QueuedEmail[]> {
  return db.prisma.emailOutbox.findMany({
    where: { to: to.toLowerCase(), ...(kind ? { kind } : {}) },
    orderBy: { createdAt: "asc" },
    select: { to: true, kind: true, subject: true, text: true, createdAt: true },
  });
}

/** Waits until `count` messages of `kind` are queued for `to` (the anonymous forms queue after answering). */
export async function waitForEmails(db: Database, to: string, kind: string, count = 1, timeoutMs = 10_000): Promise<QueuedEmail[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await queuedEmails(db, to, kind);
    if (found.length >= count) return found;
    if (Date.now() > deadline) throw new Error(`expected ${count} ${kind} email(s) to ${to}, found ${found.length}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The newest message of `kind` for `to`, once there is one. */
export async function latestEmail(db: Database, to: string, kind: string): Promise<QueuedEmail> {
  const all = await waitForEmails(db, to, kind);
  return all[all.length - 1]!;
}

/** The first link under `issuer` in a message's text. */
export function linkIn(text: string, issuer: string): URL {
  const escaped = issuer.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const match = new RegExp(`${escaped}/[^\\s<>"]+`).exec(text);
  if (!match) throw new Error(`no link to ${issuer} in: ${text.slice(0, 300)}`);
  return new URL(match[0]);
}

/**
 * Lets work scheduled after an answer run, then settle (for "nothing was
 * queued" checks): that work starts up to afterAnswerJitterMs after the
 * answer, so a shorter wait would let such a check pass before it ran.
 */
export function settle(ms = afterAnswerJitterMs + 300): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
