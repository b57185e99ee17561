/** Queries on AuditEvent, the keyed hash chain of the audit log (services/audit.ts). */
import type { DatabaseProvider, PrismaClient, Tx } from "./database.ts";

export interface AuditRow {
  seq: number;
  id: string;
  createdAt: Date;
  type: string;
  actorType: string;
  actorId: string | null;
  userId: string | null;
  clientId: string | null;
  ip: string | null;
  userAgent: string | null;
  /** JSON text. */
  data: string;
  prevHash: string;
  hash: string;
}

/**
 * Serialises writers of the chain until the transaction ends: PostgreSQL takes
 * an advisory lock. SQLite runs one writer at a time, but Prisma begins its
 * transactions deferred: one that reads the chain's head first and writes
 * after another process committed fails with SQLITE_BUSY_SNAPSHOT rather
 * than wait. A write that changes nothing, first, takes the write lock (and
 * waits for it) before the head is read.
 */
export async function lockAuditChain(tx: Tx, provider: DatabaseProvider): Promise<void> {
  if (provider === "postgresql") await tx.$executeRawUnsafe("SELECT pg_advisory_xact_lock(7246118343)");
  else await tx.$executeRawUnsafe('UPDATE "AuditEvent" SET "seq" = "seq" WHERE 0');
}

export async function findLastAuditHash(tx: Tx): Promise<string | undefined> {
  const last = await tx.auditEvent.findFirst({ orderBy: { seq: "desc" }, select: { hash: true } });
  return last?.hash;
}

export async function insertAuditEvent(tx: Tx, row: Omit<AuditRow, "seq">): Promise<void> {
  await tx.auditEvent.create({ data: row });
}

/** The newest event's sequence number and hash, or null for an empty log. */
export async function findAuditHead(prisma: PrismaClient): Promise<Pick<AuditRow, "seq" | "hash"> | null> {
  return prisma.auditEvent.findFirst({ orderBy: { seq: "desc" }, select: { seq: true, hash: true } });
}

export async function findAuditEventBySeq(prisma: PrismaClient, seq: number): Promise<Pick<AuditRow, "id" | "hash"> | null> {
  return prisma.auditEvent.findUnique({ where: { seq }, select: { id: true, hash: true } });
}

/** Events newest first, `limit` at most, before sequence number `beforeSeq`. */
export async function listAuditEvents(
  prisma: PrismaClient,
  filter: { userId?: string; type?: string; beforeSeq?: number; limit: number },
): Promise<AuditRow[]> {
  return prisma.auditEvent.findMany({
    where: {
      ...(filter.userId && { userId: filter.userId }),
      ...(filter.type && { type: filter.type }),
      ...(filter.beforeSeq !== undefined && { seq: { lt: filter.beforeSeq } }),
    },
    orderBy: { seq: "desc" },
    take: filter.limit,
  });
}

/**
 * An event as the chain walk sees it: with its re-key attestation (see
 * rekeyAuditChain in services/audit.ts), which is never part of the content.
 */
export interface ChainedAuditRow extends AuditRow {
  rekeyHash: string | null;
}

/**
 * Stores re-key attestations, each only if its event still has the hash it
 * was computed over (a compare-and-set: a changed row is left alone, and
 * verification finds it). One short transaction per call. Returns how many
 * were stored.
 */
export async function setAuditRekeyHashes(prisma: PrismaClient, items: { seq: number; hash: string; rekeyHash: string }[]): Promise<number> {
  if (items.length === 0) return 0;
  const results = await prisma.$transaction(
    items.map(({ seq, hash, rekeyHash }) => prisma.auditEvent.updateMany({ where: { seq, hash }, data: { rekeyHash } })),
  );
  return results.reduce((sum, r) => sum + r.count, 0);
}

/** Every event oldest first, in pages (for verification of the chain). */
export async function* walkAuditEvents(prisma: PrismaClient, pageSize = 500, afterSeq = 0): AsyncGenerator<ChainedAuditRow> {
  let after = afterSeq;
  for (;;) {
    const page = await prisma.auditEvent.findMany({ where: { seq: { gt: after } }, orderBy: { seq: "asc" }, take: pageSize });
    for (const row of page) yield row;
    if (page.length < pageSize) return;
    after = page[page.length - 1]!.seq;
  }
}
