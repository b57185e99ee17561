/**
 * Queries on OidcRecord, the one table behind every oidc-provider model
 * (STYLE.md, Storage). Rows past `expiresAt` are treated as missing here, so
 * no caller ever sees an expired session, grant, code or token even before
 * the sweeper has deleted it.
 */
import type { PrismaClient } from "./database.ts";

export type OidcPayload = Record<string, unknown>;

export interface OidcRecordInput {
  model: string;
  id: string;
  payload: OidcPayload;
  expiresAt: Date | null;
}

function str(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/** The indexed columns derived from a payload. */
function columnsOf(payload: OidcPayload) {
  return {
    grantId: str(payload.grantId),
    uid: str(payload.uid),
    userCode: str(payload.userCode),
    accountId: str(payload.accountId),
    clientId: str(payload.clientId),
    consumedAt: typeof payload.consumed === "number" ? new Date(payload.consumed * 1000) : null,
  };
}

export async function upsertOidcRecord(prisma: PrismaClient, record: OidcRecordInput): Promise<void> {
  const data = { payload: JSON.stringify(record.payload), expiresAt: record.expiresAt, ...columnsOf(record.payload) };
  await prisma.oidcRecord.upsert({
    where: { model_id: { model: record.model, id: record.id } },
    create: { model: record.model, id: record.id, ...data },
    update: data,
  });
}

type Row = { payload: string; expiresAt: Date | null; consumedAt: Date | null };

/**
 * The payload of a row that has not expired. consume() only sets the
 * consumedAt column, so it is folded back in as `consumed`, except within
 * `consumedGraceMs` of consumption, when the row still reads as unconsumed.
 */
function live(row: Row | null, consumedGraceMs = 0, now = Date.now()): OidcPayload | undefined {
  if (!row || (row.expiresAt && row.expiresAt.getTime() <= now)) return undefined;
  const payload = JSON.parse(row.payload) as OidcPayload;
  if (!row.consumedAt || row.consumedAt.getTime() + consumedGraceMs > now) return payload;
  return { ...payload, consumed: Math.floor(row.consumedAt.getTime() / 1000) };
}

const rowFields = { payload: true, expiresAt: true, consumedAt: true } as const;

/**
 * Finds a live row. `consumedGraceMs` > 0 lets a consumed row read as
 * unconsumed for that long after its consumption (REFRESH_REUSE_GRACE).
 */
export async function findOidcRecord(
  prisma: PrismaClient,
  model: string,
  id: string,
  consumedGraceMs = 0,
): Promise<OidcPayload | undefined> {
  return live(await prisma.oidcRecord.findUnique({ where: { model_id: { model, id } }, select: rowFields }), consumedGraceMs);
}

export async function findOidcRecordByUid(prisma: PrismaClient, model: string, uid: string): Promise<OidcPayload | undefined> {
  return live(await prisma.oidcRecord.findFirst({ where: { model, uid }, select: rowFields, orderBy: { createdAt: "desc" } }));
}

export async function findOidcRecordByUserCode(
  prisma: PrismaClient,
  model: string,
  userCode: string,
): Promise<OidcPayload | undefined> {
  return live(await prisma.oidcRecord.findFirst({ where: { model, userCode }, select: rowFields, orderBy: { createdAt: "desc" } }));
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
 * the grace window further out.
 */
export async function consumeOidcRecord(prisma: PrismaClient, model: string, id: string): Promise<ConsumeOutcome> {
  const { count } = await prisma.oidcRecord.updateMany({ where: { model, id, consumedAt: null }, data: { consumedAt: new Date() } });
  if (count > 0) return { consumed: true };
  const row = await prisma.oidcRecord.findUnique({ where: { model_id: { model, id } }, select: { consumedAt: true, grantId: true } });
  return { consumed: false, row };
}

export async function deleteOidcRecord(prisma: PrismaClient, model: string, id: string): Promise<void> {
  await prisma.oidcRecord.deleteMany({ where: { model, id } });
}

/** Deletes one model's rows issued under a grant: one indexed delete. */
export async function deleteOidcRecordsByGrant(prisma: PrismaClient, model: string, grantId: string): Promise<number> {
  const { count } = await prisma.oidcRecord.deleteMany({ where: { model, grantId } });
  return count;
}

/**
 * Revokes a grant: deletes every row issued under it (of every model) and the
 * Grant row itself, as oidc-provider's revoke helper does model by model.
 */
export async function deleteOidcGrant(prisma: PrismaClient, grantId: string): Promise<void> {
  await prisma.$transaction([
    prisma.oidcRecord.deleteMany({ where: { grantId } }),
    prisma.oidcRecord.deleteMany({ where: { model: "Grant", id: grantId } }),
  ]);
}

/** Deletes every row whose expiry has passed; returns how many. */
export async function deleteExpiredOidcRecords(prisma: PrismaClient, now = new Date()): Promise<number> {
  const { count } = await prisma.oidcRecord.deleteMany({ where: { expiresAt: { lte: now } } });
  return count;
}
