/** Queries on the SigningKey table. */
import type { Database } from "./database.ts";
import { clientOf, dialectOf, transaction, type Queryable } from "./transaction.ts";

export type KeyState = "next" | "current" | "retired";

/** A key without its private part: what the lifecycle decides on. */
export interface SigningKeyState {
  kid: string;
  alg: string;
  state: string;
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
}

export interface SigningKeyRow extends SigningKeyState {
  publicJwk: unknown;
  privateJwkEncrypted: string;
}

const stateColumns = { kid: true, alg: true, state: true, createdAt: true, activatedAt: true, retiredAt: true } as const;

/** Every key with its sealed private part, newest first. */
export async function listSigningKeyRows(db: Queryable): Promise<SigningKeyRow[]> {
  return clientOf(db).signingKey.findMany({ orderBy: [{ createdAt: "desc" }, { kid: "asc" }] });
}

/** Every key's state and dates, newest first: a few rows, read every few seconds by each instance. */
export async function listSigningKeyStates(db: Queryable): Promise<SigningKeyState[]> {
  return clientOf(db).signingKey.findMany({ select: stateColumns, orderBy: [{ createdAt: "desc" }, { kid: "asc" }] });
}

/** One key's state and dates, or null. */
export async function findSigningKeyState(db: Queryable, kid: string): Promise<SigningKeyState | null> {
  return clientOf(db).signingKey.findUnique({ where: { kid }, select: stateColumns });
}

/** Stores a new key (its private part already sealed). */
export async function insertSigningKey(db: Queryable, key: Omit<SigningKeyRow, "retiredAt">): Promise<void> {
  await clientOf(db).signingKey.create({ data: { ...key, publicJwk: key.publicJwk as object } });
}

/** next -> current. */
export async function activateSigningKey(db: Queryable, kid: string, at: Date): Promise<void> {
  await clientOf(db).signingKey.update({ where: { kid }, data: { state: "current", activatedAt: at } });
}

/** current or next -> retired. */
export async function retireSigningKey(db: Queryable, kid: string, at: Date): Promise<void> {
  await clientOf(db).signingKey.update({ where: { kid }, data: { state: "retired", retiredAt: at } });
}

/** Deletes a key; returns whether it existed. */
export async function deleteSigningKey(db: Queryable, kid: string): Promise<boolean> {
  const { count } = await clientOf(db).signingKey.deleteMany({ where: { kid } });
  return count === 1;
}

/**
 * Inserts the given keys unless a current key of their algorithm already
 * exists, atomically: several instances starting on an empty database end up
 * with one key set. Returns the kids inserted.
 */
export async function insertMissingCurrentKeys(db: Database, keys: Omit<SigningKeyRow, "createdAt" | "retiredAt">[]): Promise<string[]> {
  return transaction(db, async (tx) => {
    // Serialises concurrent first starts; released at commit. (On SQLite the
    // transaction's write lock does.) An advisory lock, not a row lock: when
    // no key exists there is no row to lock.
    if (dialectOf(tx) === "postgresql") await tx.$executeRawUnsafe("SELECT pg_advisory_xact_lock(7246118342)");
    const existing = await tx.signingKey.findMany({ where: { state: "current" }, select: { alg: true } });
    const have = new Set(existing.map((k) => k.alg));
    const missing = keys.filter((k) => !have.has(k.alg));
    for (const key of missing) await tx.signingKey.create({ data: { ...key, publicJwk: key.publicJwk as object } });
    return missing.map((k) => k.kid);
  });
}

/** A page of sealed private JWKs, by kid (for `gatehouse keys reseal`). */
export async function pageSealedSigningKeys(db: Queryable, after: string | undefined, limit: number): Promise<{ id: string; sealed: string }[]> {
  const rows = await clientOf(db).signingKey.findMany({
    where: after === undefined ? {} : { kid: { gt: after } },
    select: { kid: true, privateJwkEncrypted: true },
    orderBy: { kid: "asc" },
    take: limit,
  });
  return rows.map((r) => ({ id: r.kid, sealed: r.privateJwkEncrypted }));
}

/** Replaces a sealed private JWK only if it is still `from` (compare-and-set). */
export async function replaceSealedSigningKey(db: Queryable, kid: string, from: string, to: string): Promise<boolean> {
  const { count } = await clientOf(db).signingKey.updateMany({ where: { kid, privateJwkEncrypted: from }, data: { privateJwkEncrypted: to } });
  return count === 1;
}
