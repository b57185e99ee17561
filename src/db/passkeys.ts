/** Queries on Passkey and WebAuthnChallenge. */
import type { PrismaClient, Tx } from "./database.ts";

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

export async function listPasskeysOfUser(prisma: PrismaClient, userId: string): Promise<PasskeyRow[]> {
  return prisma.passkey.findMany({ where: { userId }, orderBy: { createdAt: "asc" } });
}

export async function findPasskeyByCredentialId(tx: Tx, credentialId: Uint8Array<ArrayBuffer>): Promise<PasskeyRow | null> {
  return tx.passkey.findUnique({ where: { credentialId } });
}

export async function insertPasskey(tx: Tx, row: Omit<PasskeyRow, "createdAt" | "lastUsedAt">): Promise<PasskeyRow> {
  return tx.passkey.create({ data: row });
}

/**
 * Stores the new counter only if the stored one is still `expected`: two
 * concurrent sign-ins with one signature cannot both pass.
 */
export async function updatePasskeyCounter(tx: Tx, id: string, expected: bigint, counter: bigint): Promise<boolean> {
  const { count } = await tx.passkey.updateMany({ where: { id, counter: expected }, data: { counter, lastUsedAt: new Date() } });
  return count === 1;
}

export async function deletePasskey(tx: Tx, id: string): Promise<boolean> {
  const { count } = await tx.passkey.deleteMany({ where: { id } });
  return count === 1;
}

export async function countPasskeysOfUser(tx: Tx, userId: string): Promise<number> {
  return tx.passkey.count({ where: { userId } });
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

export async function insertChallenge(prisma: PrismaClient, row: ChallengeRow): Promise<void> {
  await prisma.webAuthnChallenge.create({ data: row });
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

export async function deleteExpiredChallenges(prisma: PrismaClient, now = new Date()): Promise<number> {
  const { count } = await prisma.webAuthnChallenge.deleteMany({ where: { expiresAt: { lte: now } } });
  return count;
}
