/** Queries on AuditEvent, the keyed hash chain of the audit log (services/audit.ts). */
import { clientOf, dialectOf, transaction, type Database, type Queryable, type Tx } from "./transaction.ts";

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
 * Serialises writers of the chain until the transaction ends, so that each
 * reads the head the previous one wrote. PostgreSQL: an advisory lock (there
 * is no row to lock in an empty chain); the head is read after it, and under
 * READ COMMITTED that read sees the last committed append. SQLite: nothing to
 * do, transaction() took the database's write lock before anything was read.
 */
export async function lockAuditChain(tx: Tx): Promise<void> {
  if (dialectOf(tx) === "postgresql") await tx.$executeRawUnsafe("SELECT pg_advisory_xact_lock(7246118343)");
}

export async function findLastAuditHash(tx: Tx): Promise<string | undefined> {
  const last = await tx.auditEvent.findFirst({ orderBy: { seq: "desc" }, select: { hash: true } });
  return last?.hash;
}

export async function insertAuditEvent(tx: Tx, row: Omit<AuditRow, "seq">): Promise<void> {
  await tx.auditEvent.create({ data: row });
}

/**
 * Appends one event on its own: `chain` makes the row from the current
 * head's hash. On SQLite, one synchronous BEGIN IMMEDIATE transaction on
 * the process's connection (SqlDriver.immediate): four prepared statements
 * that hold the connection for microseconds, where a transaction() through
 * Prisma holds it across several awaits. Elsewhere, transaction().
 */
export async function appendAuditEventAlone(db: Database, chain: (prevHash: string | undefined) => Omit<AuditRow, "seq">): Promise<void> {
  if (db.sql.immediate) {
    await db.sql.immediate((sql) => {
      const [head] = sql.query(`SELECT "hash" FROM "AuditEvent" ORDER BY "seq" DESC LIMIT 1`, []);
      const row = chain(head?.hash as string | undefined);
      sql.execute(
        `INSERT INTO "AuditEvent" ("id", "createdAt", "type", "actorType", "actorId", "userId", "clientId", "ip", "userAgent", "data", "prevHash", "hash")
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [row.id, row.createdAt, row.type, row.actorType, row.actorId, row.userId, row.clientId, row.ip, row.userAgent, row.data, row.prevHash, row.hash],
      );
    });
    return;
  }
  await transaction(db, async (tx) => {
    await lockAuditChain(tx);
    await insertAuditEvent(tx, chain(await findLastAuditHash(tx)));
  });
}

/** The newest event's sequence number and hash, or null for an empty log. */
export async function findAuditHead(db: Queryable): Promise<Pick<AuditRow, "seq" | "hash"> | null> {
  return clientOf(db).auditEvent.findFirst({ orderBy: { seq: "desc" }, select: { seq: true, hash: true } });
}

export async function findAuditEventBySeq(db: Queryable, seq: number): Promise<Pick<AuditRow, "id" | "hash"> | null> {
  return clientOf(db).auditEvent.findUnique({ where: { seq }, select: { id: true, hash: true } });
}

/** Events newest first, `limit` at most, before sequence number `beforeSeq`. */
export async function listAuditEvents(
  db: Queryable,
  filter: { userId?: string; type?: string; beforeSeq?: number; limit: number },
): Promise<AuditRow[]> {
  return clientOf(db).auditEvent.findMany({
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
export async function setAuditRekeyHashes(db: Database, items: { seq: number; hash: string; rekeyHash: string }[]): Promise<number> {
  if (items.length === 0) return 0;
  return transaction(db, async (tx) => {
    let stored = 0;
    for (const { seq, hash, rekeyHash } of items) stored += (await tx.auditEvent.updateMany({ where: { seq, hash }, data: { rekeyHash } })).count;
    return stored;
  });
}

/** Every event oldest first, in pages (for verification of the chain). */
export async function* walkAuditEvents(db: Queryable, pageSize = 500, afterSeq = 0): AsyncGenerator<ChainedAuditRow> {
  let after = afterSeq;
  for (;;) {
    const page = await clientOf(db).auditEvent.findMany({ where: { seq: { gt: after } }, orderBy: { seq: "asc" }, take: pageSize });
    for (const row of page) yield row;
    if (page.length < pageSize) return;
    after = page[page.length - 1]!.seq;
  }
}
