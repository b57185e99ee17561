/** Queries on EmailLinkToken (see prisma/models.prisma): single-use email links, stored by keyed hash. */
import { clientOf, type Queryable } from "./transaction.ts";

export interface EmailLinkRow {
  id: string;
  tokenHash: string;
  userId: string;
  purpose: string;
  expiresAt: Date;
  usedAt: Date | null;
  supersededAt: Date | null;
  createdAt: Date;
}

/**
 * Inserts a link and marks every older live link of the same user and
 * purpose superseded: only the newest link works. Call inside a transaction.
 */
export async function insertEmailLink(db: Queryable, row: Pick<EmailLinkRow, "id" | "tokenHash" | "userId" | "purpose" | "expiresAt">): Promise<void> {
  const client = clientOf(db);
  await client.emailLinkToken.updateMany({
    where: { userId: row.userId, purpose: row.purpose, usedAt: null, supersededAt: null },
    data: { supersededAt: new Date() },
  });
  await client.emailLinkToken.create({ data: row });
}

/** The link stored under one of `tokenHashes` (the candidates of a presented token), or null. */
export async function findEmailLink(db: Queryable, tokenHashes: readonly string[]): Promise<EmailLinkRow | null> {
  return clientOf(db).emailLinkToken.findFirst({ where: { tokenHash: { in: [...tokenHashes] } } });
}

/**
 * Uses a link: one compare-and-set that succeeds only while the link is
 * unused, not superseded and not expired, so of two parallel uses exactly one
 * gets true.
 */
export async function markEmailLinkUsed(db: Queryable, id: string, now = new Date()): Promise<boolean> {
  const { count } = await clientOf(db).emailLinkToken.updateMany({
    where: { id, usedAt: null, supersededAt: null, expiresAt: { gt: now } },
    data: { usedAt: now },
  });
  return count === 1;
}

/** Whether the user has a link of `purpose` that still works (an invitation still pending). */
export async function hasLiveEmailLink(db: Queryable, userId: string, purpose: string, now = new Date()): Promise<boolean> {
  const count = await clientOf(db).emailLinkToken.count({ where: { userId, purpose, usedAt: null, supersededAt: null, expiresAt: { gt: now } } });
  return count > 0;
}

/** Deletes links that expired more than `graceMs` ago (kept a while so that a late click is reported as expired). */
export async function deleteExpiredEmailLinks(db: Queryable, graceMs = 7 * 24 * 3600 * 1000, now = new Date()): Promise<number> {
  const { count } = await clientOf(db).emailLinkToken.deleteMany({ where: { expiresAt: { lte: new Date(now.getTime() - graceMs) } } });
  return count;
}

/** Deletes every link of a user (the user is being deleted). */
export async function deleteEmailLinksOfUser(db: Queryable, userId: string): Promise<number> {
  const { count } = await clientOf(db).emailLinkToken.deleteMany({ where: { userId } });
  return count;
}

/** The links a password sets up: once the user has a password by any route, the live ones stop working. */
export const passwordLinkPurposes = ["password-reset", "invitation"] as const;

/**
 * Marks the user's live links of `purposes` superseded (the password was set
 * another way: an older reset or invitation link must not replace it). Call
 * inside the transaction that changes the password.
 */
export async function supersedeEmailLinks(db: Queryable, userId: string, purposes: readonly string[] = passwordLinkPurposes): Promise<number> {
  const { count } = await clientOf(db).emailLinkToken.updateMany({
    where: { userId, purpose: { in: [...purposes] }, usedAt: null, supersededAt: null },
    data: { supersededAt: new Date() },
  });
  return count;
}
