/**
 * Queries on EmailOutbox: queueing a rendered message, claiming due rows
 * for sending, recording the outcome, and sweeping finished rows
 * (docs/email.md, "The outbox").
 *
 * Claiming is a compare-and-set per row (`updateMany` with the state it was
 * read in, in `where`: one statement), so two instances polling at once
 * never both send a message. The claim increments `attempts`, which then
 * fences the outcome: a sender whose lease expired (it hung, or crashed and
 * came back) cannot mark a row that another sender has claimed since.
 */
import { clientOf, type Queryable } from "./transaction.ts";

export type EmailStatus = "queued" | "sending" | "sent" | "failed";

export interface EmailOutboxRow {
  id: string;
  to: string;
  userId: string | null;
  kind: string;
  subject: string;
  text: string;
  html: string;
  status: string;
  attempts: number;
  nextAttemptAt: Date;
  lockedUntil: Date | null;
  lastError: string | null;
  createdAt: Date;
  sentAt: Date | null;
}

/** What queueing a message writes; the rest of the row is the queue's state. */
export type NewEmail = Pick<EmailOutboxRow, "id" | "to" | "userId" | "kind" | "subject" | "text" | "html">;

/** Queues a message, due at once; inside the caller's transaction when given a Tx. */
export async function insertEmail(db: Queryable, email: NewEmail, now = new Date()): Promise<void> {
  await clientOf(db).emailOutbox.create({ data: { ...email, status: "queued", attempts: 0, nextAttemptAt: now } });
}

export async function findEmailById(db: Queryable, id: string): Promise<EmailOutboxRow | null> {
  return clientOf(db).emailOutbox.findUnique({ where: { id } });
}

/** A due row: queued and due, or sending under a lease that has expired (its sender died). */
function dueWhere(now: Date) {
  return {
    OR: [
      { status: "queued", nextAttemptAt: { lte: now }, OR: [{ lockedUntil: null }, { lockedUntil: { lt: now } }] },
      { status: "sending", lockedUntil: { lt: now } },
    ],
  };
}

/**
 * Claims up to `limit` due messages for `leaseMs`: each becomes `sending`
 * with `lockedUntil` = now + lease and one more attempt, by a compare-and-set
 * on the status, lease and attempts it was read with. Rows another instance
 * claimed in between are skipped. Returns the claimed rows (attempts
 * already counted).
 */
export async function claimDueEmails(db: Queryable, { limit, leaseMs, now = new Date() }: { limit: number; leaseMs: number; now?: Date }): Promise<EmailOutboxRow[]> {
  const client = clientOf(db);
  const candidates = await client.emailOutbox.findMany({ where: dueWhere(now), orderBy: { nextAttemptAt: "asc" }, take: limit });
  const lockedUntil = new Date(now.getTime() + leaseMs);
  const claimed: EmailOutboxRow[] = [];
  for (const row of candidates) {
    const { count } = await client.emailOutbox.updateMany({
      where: { id: row.id, status: row.status, attempts: row.attempts, ...dueWhere(now) },
      data: { status: "sending", lockedUntil, attempts: row.attempts + 1 },
    });
    if (count === 1) claimed.push({ ...row, status: "sending", lockedUntil, attempts: row.attempts + 1 });
  }
  return claimed;
}

/** The claim a sender holds: the row and the attempt number it claimed it with. */
export interface EmailClaim {
  id: string;
  attempts: number;
}

const heldBy = (claim: EmailClaim) => ({ id: claim.id, status: "sending", attempts: claim.attempts });

/** Marks a claimed message sent; false when the claim was lost (another sender took the row). */
export async function markEmailSent(db: Queryable, claim: EmailClaim, now = new Date()): Promise<boolean> {
  const { count } = await clientOf(db).emailOutbox.updateMany({ where: heldBy(claim), data: { status: "sent", sentAt: now, lockedUntil: null, lastError: null } });
  return count === 1;
}

/** Puts a claimed message back in the queue, due at `nextAttemptAt`. */
export async function markEmailRetry(db: Queryable, claim: EmailClaim, nextAttemptAt: Date, lastError: string): Promise<boolean> {
  const { count } = await clientOf(db).emailOutbox.updateMany({ where: heldBy(claim), data: { status: "queued", nextAttemptAt, lockedUntil: null, lastError } });
  return count === 1;
}

/** Gives up on a claimed message. */
export async function markEmailFailed(db: Queryable, claim: EmailClaim, lastError: string): Promise<boolean> {
  const { count } = await clientOf(db).emailOutbox.updateMany({ where: heldBy(claim), data: { status: "failed", lockedUntil: null, lastError } });
  return count === 1;
}

/** Gives a claimed, unsent message back (a sender stopping): due at once, the attempt not counted. */
export async function releaseEmailClaim(db: Queryable, claim: EmailClaim): Promise<boolean> {
  const { count } = await clientOf(db).emailOutbox.updateMany({ where: heldBy(claim), data: { status: "queued", lockedUntil: null, attempts: claim.attempts - 1 } });
  return count === 1;
}

/** Deletes messages sent or given up before `before`: their bodies may hold links with tokens. */
export async function deleteFinishedEmails(db: Queryable, before: Date): Promise<number> {
  const { count } = await clientOf(db).emailOutbox.deleteMany({ where: { status: { in: ["sent", "failed"] }, createdAt: { lt: before } } });
  return count;
}

/** Messages by status, for operators and tests. */
export async function countEmailsByStatus(db: Queryable): Promise<Record<string, number>> {
  const rows = await clientOf(db).emailOutbox.groupBy({ by: ["status"], _count: { _all: true } });
  return Object.fromEntries(rows.map((r) => [r.status, r._count._all]));
}
