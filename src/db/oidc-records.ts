/**
 * Queries on OidcRecord, the one table behind every oidc-provider model
 * (docs: https://github.com/panva/node-oidc-provider/blob/main/example/my_adapter.js).
 * Rows past `expiresAt` are treated as missing here, so no caller ever sees
 * an expired session, grant, code or token even before the sweeper has
 * deleted it. Lookups take a list of ids: a credential's row is keyed by its
 * keyed hash, which has one form per master key (see crypto/stored-ids.ts).
 *
 * Every request to the token, userinfo and introspection endpoints runs
 * these, so they are hand-written SQL sent through `db.sql`, straight to
 * Prisma's driver adapter (one statement each, no implicit transaction,
 * nothing read back that is not used), rather than through Prisma's query
 * builder or its `$queryRaw`, which cost several times more than the
 * statement itself (docs/PERFORMANCE.md). The SQL is the common subset of
 * SQLite and PostgreSQL.
 */
import type { Database } from "./database.ts";
import { numbered, placeholders, toDate } from "./sql.ts";

export type OidcPayload = Record<string, unknown>;

export interface OidcRecordInput {
  model: string;
  /** The stored id (for credentials, their keyed hash). */
  id: string;
  /** What is stored: the indexed columns are read from it. */
  payload: OidcPayload;
  /** The stored user code column, when it is not the payload's (a keyed hash). */
  userCode?: string | null;
  expiresAt: Date | null;
  /** Ids the same row may have been stored under before (an older key's): deleted. */
  replaces?: readonly string[];
}

function str(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

const upsertSql = `
  INSERT INTO "OidcRecord" ("model", "id", "payload", "grantId", "uid", "userCode", "accountId", "clientId", "expiresAt", "consumedAt", "createdAt")
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT ("model", "id") DO UPDATE SET
    "payload" = excluded."payload", "grantId" = excluded."grantId", "uid" = excluded."uid", "userCode" = excluded."userCode",
    "accountId" = excluded."accountId", "clientId" = excluded."clientId", "expiresAt" = excluded."expiresAt",
    "consumedAt" = excluded."consumedAt"`;

/**
 * Inserts or replaces a row. A replaced row keeps its createdAt and, like
 * oidc-provider's own adapters, takes everything else from the new payload.
 */
export async function upsertOidcRecord(db: Database, record: OidcRecordInput): Promise<void> {
  const { payload } = record;
  const consumedAt = typeof payload.consumed === "number" ? new Date(payload.consumed * 1000) : null;
  const userCode = record.userCode !== undefined ? record.userCode : str(payload.userCode);
  const args = [
    record.model,
    record.id,
    JSON.stringify(payload),
    str(payload.grantId),
    str(payload.uid),
    userCode,
    str(payload.accountId),
    str(payload.clientId),
    record.expiresAt,
    consumedAt,
    new Date(),
  ];
  if (!record.replaces?.length) {
    await db.sql.execute(upsertSql, args);
    return;
  }
  // One transaction: a reader sees the row under its old id or its new one,
  // never neither. Rare (a credential first stored under an older master
  // key), so through Prisma, which runs the transaction.
  const older = [...record.replaces];
  await db.prisma.$transaction([
    db.prisma.oidcRecord.deleteMany({ where: { model: record.model, id: { in: older } } }),
    db.prisma.$executeRawUnsafe(db.provider === "sqlite" ? upsertSql : numbered(upsertSql), ...args),
  ]);
}

type Row = { payload: string; expiresAt: Date | null; consumedAt: Date | null };

function rowOf(row: Record<string, unknown> | undefined): Row | undefined {
  return row && { payload: row.payload as string, expiresAt: toDate(row.expiresAt), consumedAt: toDate(row.consumedAt) };
}

/**
 * The payload of a row that has not expired. consume() only sets the
 * consumedAt column, so it is folded back in as `consumed`, except within
 * `consumedGraceMs` of consumption, when the row still reads as unconsumed.
 */
function live(row: Row | undefined, consumedGraceMs = 0, now = Date.now()): OidcPayload | undefined {
  if (!row || (row.expiresAt && row.expiresAt.getTime() <= now)) return undefined;
  const payload = JSON.parse(row.payload) as OidcPayload;
  if (!row.consumedAt || row.consumedAt.getTime() + consumedGraceMs > now) return payload;
  return { ...payload, consumed: Math.floor(row.consumedAt.getTime() / 1000) };
}

/**
 * Finds a live row stored under one of `ids`. `consumedGraceMs` > 0 lets a
 * consumed row read as unconsumed for that long after its consumption
 * (REFRESH_REUSE_GRACE).
 */
export async function findOidcRecord(db: Database, model: string, ids: readonly string[], consumedGraceMs = 0): Promise<OidcPayload | undefined> {
  const rows = await db.sql.query(
    `SELECT "payload", "expiresAt", "consumedAt" FROM "OidcRecord" WHERE "model" = ? AND "id" IN (${placeholders(ids)}) LIMIT 1`,
    [model, ...ids],
  );
  return live(rowOf(rows[0]), consumedGraceMs);
}

/** A row as stored, for callers that pick among several (findOidcRecordsWithGrant). */
export interface StoredRecord {
  model: string;
  id: string;
  grantId: string | null;
  row: Row;
}

/**
 * In one statement: the rows of any of `models` stored under one of `ids`
 * (a token value is stored under the same keyed hash whatever its model),
 * and the Grant row each of them names. oidc-provider reads a token and then
 * its grant (which must still exist: revocation deletes it); reading both at
 * once saves a round trip on every token, userinfo and introspection
 * request. Both come from the same snapshot of the database.
 */
export async function findOidcRecordsWithGrant(db: Database, models: readonly string[], ids: readonly string[]): Promise<StoredRecord[]> {
  // A join, not a subquery: SQLite builds a temporary table for an
  // IN (SELECT ...) list on every run, which cost ten times the lookups.
  const rows = await db.sql.query(
    `SELECT t."model", t."id", t."grantId", t."payload", t."expiresAt", t."consumedAt",
            g."payload" AS "grantPayload", g."expiresAt" AS "grantExpiresAt"
     FROM "OidcRecord" t LEFT JOIN "OidcRecord" g ON g."model" = 'Grant' AND g."id" = t."grantId"
     WHERE t."model" IN (${placeholders(models)}) AND t."id" IN (${placeholders(ids)})`,
    [...models, ...ids],
  );
  const records: StoredRecord[] = [];
  for (const row of rows) {
    const grantId = (row.grantId as string | null) ?? null;
    records.push({ model: row.model as string, id: row.id as string, grantId, row: rowOf(row)! });
    if (grantId !== null && row.grantPayload !== null && row.grantPayload !== undefined) {
      const grant = { payload: row.grantPayload as string, expiresAt: toDate(row.grantExpiresAt), consumedAt: null };
      records.push({ model: "Grant", id: grantId, grantId: null, row: grant });
    }
  }
  return records;
}

/** The payload of a stored row, if it is live (see findOidcRecord). */
export function livePayload(record: StoredRecord | undefined, consumedGraceMs = 0): OidcPayload | undefined {
  return live(record?.row, consumedGraceMs);
}

export async function findOidcRecordByUid(db: Database, model: string, uid: string): Promise<OidcPayload | undefined> {
  const rows = await db.sql.query(
    `SELECT "payload", "expiresAt", "consumedAt" FROM "OidcRecord" WHERE "model" = ? AND "uid" = ? ORDER BY "createdAt" DESC LIMIT 1`,
    [model, uid],
  );
  return live(rowOf(rows[0]));
}

/** Finds the newest live row whose stored user code is one of `userCodes`. */
export async function findOidcRecordByUserCode(db: Database, model: string, userCodes: readonly string[]): Promise<OidcPayload | undefined> {
  const rows = await db.sql.query(
    `SELECT "payload", "expiresAt", "consumedAt" FROM "OidcRecord" WHERE "model" = ? AND "userCode" IN (${placeholders(userCodes)})
     ORDER BY "createdAt" DESC LIMIT 1`,
    [model, ...userCodes],
  );
  return live(rowOf(rows[0]));
}

export type ConsumeOutcome =
  | { consumed: true }
  /** Not consumed by this call: the row as it is now (null: gone). */
  | { consumed: false; row: { consumedAt: Date | null; grantId: string | null } | null };

/**
 * Marks a row consumed (codes, refresh tokens) without rewriting its payload,
 * as a compare-and-set: only the call that finds `consumedAt` empty sets it,
 * so of two concurrent redemptions exactly one wins. The first consumption
 * time is never moved, so a retry within the reuse grace period cannot push
 * the grace window further out. One UPDATE, outside any transaction: the
 * WHERE clause is the whole check.
 */
export async function consumeOidcRecord(db: Database, model: string, ids: readonly string[]): Promise<ConsumeOutcome> {
  const count = await db.sql.execute(
    `UPDATE "OidcRecord" SET "consumedAt" = ? WHERE "model" = ? AND "id" IN (${placeholders(ids)}) AND "consumedAt" IS NULL`,
    [new Date(), model, ...ids],
  );
  if (count > 0) return { consumed: true };
  const rows = await db.sql.query(`SELECT "consumedAt", "grantId" FROM "OidcRecord" WHERE "model" = ? AND "id" IN (${placeholders(ids)}) LIMIT 1`, [
    model,
    ...ids,
  ]);
  const row = rows[0];
  return { consumed: false, row: row ? { consumedAt: toDate(row.consumedAt), grantId: (row.grantId as string | null) ?? null } : null };
}

export async function deleteOidcRecord(db: Database, model: string, ids: readonly string[]): Promise<void> {
  await db.sql.execute(`DELETE FROM "OidcRecord" WHERE "model" = ? AND "id" IN (${placeholders(ids)})`, [model, ...ids]);
}

/** Deletes one model's rows issued under a grant: one indexed delete. */
export async function deleteOidcRecordsByGrant(db: Database, model: string, grantId: string): Promise<number> {
  return db.sql.execute(`DELETE FROM "OidcRecord" WHERE "grantId" = ? AND "model" = ?`, [grantId, model]);
}

/**
 * Revokes a grant: deletes every row issued under it (of every model) and the
 * Grant row itself, in one statement.
 */
export async function deleteOidcGrant(db: Database, grantId: string): Promise<void> {
  await db.sql.execute(`DELETE FROM "OidcRecord" WHERE "grantId" = ? OR ("model" = 'Grant' AND "id" = ?)`, [grantId, grantId]);
}

/** Deletes every row whose expiry has passed; returns how many. */
export async function deleteExpiredOidcRecords(db: Database, now = new Date()): Promise<number> {
  const { count } = await db.prisma.oidcRecord.deleteMany({ where: { expiresAt: { lte: now } } });
  return count;
}
