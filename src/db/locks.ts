/**
 * Named exclusive locks across instances, for work that exactly one instance
 * may do at a time (the signing key lifecycle: rotation, promotion, removal).
 * PostgreSQL: a transaction-level advisory lock, released at commit or when
 * the connection dies. SQLite, which has no advisory locks: a lease row
 * (Lease) that a single UPDATE takes when it is free or expired.
 */
import { createHash, randomUUID } from "node:crypto";
import { transaction, type Database, type Tx } from "./transaction.ts";
import { isUniqueViolation } from "./errors.ts";

/** The lock is held by another instance. */
export const lockBusy = Symbol("lock busy");

/** A stable 63-bit advisory lock id for a name. */
function advisoryId(name: string): bigint {
  return createHash("sha256").update(`gatehouse:lock:${name}`).digest().readBigInt64BE(0) & 0x7fffffffffffffffn;
}

async function takeLease(db: Database, name: string, holder: string, ttlMs: number): Promise<boolean> {
  const now = new Date();
  const expiresAt = new Date(now.getTime() + ttlMs);
  try {
    await db.prisma.lease.create({ data: { name, holder, expiresAt } });
    return true;
  } catch (error) {
    // The row exists: take it below if it is free.
    if (!isUniqueViolation(error)) throw error;
  }
  // One statement: SQLite runs it alone, so two instances cannot both take it.
  const { count } = await db.prisma.lease.updateMany({
    where: { name, OR: [{ expiresAt: { lt: now } }, { holder }] },
    data: { holder, expiresAt },
  });
  return count === 1;
}

async function releaseLease(db: Database, name: string, holder: string): Promise<void> {
  await db.prisma.lease.updateMany({ where: { name, holder }, data: { expiresAt: new Date(0) } });
}

/**
 * Runs `work` in a transaction while holding the lock `name`, or returns
 * lockBusy at once when another instance holds it. `work` must finish well
 * within `ttlMs` (the SQLite lease's lifetime, after which another instance
 * may take it; a crashed holder frees it that way).
 */
export async function withExclusiveLock<T>(
  db: Database,
  name: string,
  work: (tx: Tx) => Promise<T>,
  { ttlMs = 60_000, timeoutMs = 30_000 }: { ttlMs?: number; timeoutMs?: number } = {},
): Promise<T | typeof lockBusy> {
  if (db.provider === "postgresql") {
    return transaction(
      db,
      async (tx) => {
        const rows = await tx.$queryRawUnsafe<{ locked: boolean }[]>("SELECT pg_try_advisory_xact_lock($1) AS locked", advisoryId(name));
        if (!rows[0]?.locked) return lockBusy;
        return work(tx);
      },
      { timeoutMs },
    );
  }
  // Each acquisition is its own holder: two instances in one process exclude each other too.
  const holder = randomUUID();
  if (!(await takeLease(db, name, holder, ttlMs))) return lockBusy;
  try {
    return await transaction(
      db,
      async (tx) => {
        // The lease's lifetime counts from when the work starts.
        await tx.lease.updateMany({ where: { name, holder }, data: { expiresAt: new Date(Date.now() + ttlMs) } });
        return work(tx);
      },
      { timeoutMs },
    );
  } finally {
    await releaseLease(db, name, holder);
  }
}

/**
 * withExclusiveLock(), retried for up to `waitMs` while the lock is busy: for
 * an operator's command, which should wait for the job rather than fail.
 */
export async function withExclusiveLockWait<T>(db: Database, name: string, work: (tx: Tx) => Promise<T>, waitMs = 30_000): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const result = await withExclusiveLock(db, name, work);
    if (result !== lockBusy) return result;
    if (Date.now() > deadline) throw new Error(`another instance holds the ${name} lock: try again`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
