/** Queries on Passkey and WebAuthnChallenge. */
import { clientOf, type Queryable, type Tx } from "./transaction.ts";

export interface PasskeyRow {
  id: string;
  userId: string;
  credentialId: Uint8Array<ArrayBuffer>;
  publicKey: Uint8Array<ArrayBuffer>;
  counter: bigint;
  deviceType: string;
  backedUp: boolean;
  transports: string;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
}

export async function listPasskeysOfUser(db: Queryable, userId: string): Promise<PasskeyRow[]> {
  return clientOf(db).passkey.findMany({ where: { userId }, orderBy: { createdAt: "asc" } });
}

export async function findPasskeyByCredentialId(db: Queryable, credentialId: Uint8Array<ArrayBuffer>): Promise<PasskeyRow | null> {
  return clientOf(db).passkey.findUnique({ where: { credentialId } });
}

/** The owner and name of a passkey, or null. */
export async function findPasskeyOwner(db: Queryable, id: string): Promise<Pick<PasskeyRow, "id" | "userId" | "name"> | null> {
  return clientOf(db).passkey.findUnique({ where: { id }, select: { id: true, userId: true, name: true } });
}

export async function insertPasskey(db: Queryable, row: Omit<PasskeyRow, "createdAt" | "lastUsedAt">): Promise<PasskeyRow> {
  return clientOf(db).passkey.create({ data: row });
}

/**
 * Stores the new counter only if the stored one is still `expected`: two
 * concurrent sign-ins with one signature cannot both pass.
 */
export async function updatePasskeyCounter(db: Queryable, id: string, expected: bigint, counter: bigint): Promise<boolean> {
  const { count } = await clientOf(db).passkey.updateMany({ where: { id, counter: expected }, data: { counter, lastUsedAt: new Date() } });
  return count === 1;
}

export async function deletePasskey(db: Queryable, id: string): Promise<boolean> {
  const { count } = await clientOf(db).passkey.deleteMany({ where: { id } });
  return count === 1;
}

export async function countPasskeysOfUser(db: Queryable, userId: string): Promise<number> {
  return clientOf(db).passkey.count({ where: { userId } });
}

export interface ChallengeRow {
  id: string;
  challenge: string;
  purpose: string;
  userId: string | null;
  /** The interaction's stored id (keyed hash of its uid, see crypto/stored-ids.ts), never the uid itself. */
  interactionUid: string | null;
  expiresAt: Date;
}

export async function insertChallenge(db: Queryable, row: ChallengeRow): Promise<void> {
  await clientOf(db).webAuthnChallenge.create({ data: row });
}

/**
 * Takes a challenge: reads and deletes it in one transaction, so it can be
 * used once; an expired or already-used challenge comes back undefined.
 */
export async function takeChallenge(tx: Tx, id: string): Promise<ChallengeRow | undefined> {
  const row = await tx.webAuthnChallenge.findUnique({ where: { id } });
  if (!row) return undefined;
  const { count } = await tx.webAuthnChallenge.deleteMany({ where: { id } });
  if (count !== 1 || row.expiresAt.getTime() <= Date.now()) return undefined;
  return row;
}

export async function deleteExpiredChallenges(db: Queryable, now = new Date()): Promise<number> {
  const { count } = await clientOf(db).webAuthnChallenge.deleteMany({ where: { expiresAt: { lte: now } } });
  return count;
}
