/**
 * How the rest of the code reaches the database: through a `Queryable`, the
 * opened `Database` (each query on its own, autocommitted) or the `Tx` handle
 * that `transaction()` passes to its work. Callers only pass these through to
 * the query functions of db/; the Prisma client behind them stays in db/.
 *
 * `transaction()` is the one way to group statements, and it knows its
 * dialect (docs/ARCHITECTURE.md, "Transactions"):
 *
 * - SQLite: one writer at a time. @prisma/adapter-better-sqlite3 6.19 opens
 *   every transaction with a plain (deferred) `BEGIN`, and its isolation
 *   level option maps to nothing (only SERIALIZABLE is accepted, and ignored).
 *   A deferred transaction that reads and then writes cannot upgrade to a
 *   writer if another connection (the CLI, another process) has written since
 *   its read: SQLite fails the write at once with SQLITE_BUSY_SNAPSHOT, or
 *   SQLITE_BUSY, without calling the busy handler, so busy_timeout does not
 *   help (https://www.sqlite.org/lang_transaction.html, "Read transactions";
 *   https://www.sqlite.org/rescode.html#busy_snapshot). So the first
 *   statement of every transaction is a write that changes nothing: it takes
 *   the write lock before anything is read, waiting for it under busy_timeout,
 *   which is what `BEGIN IMMEDIATE` would do. A busy database then fails that
 *   statement like any other, and Prisma rolls back and releases the adapter
 *   (a failed `BEGIN` would leave the adapter's mutex held: prisma/orm#29933).
 *   Within one process, statements outside the transaction wait for it to
 *   end (sqlite-connection.ts): the process has one connection.
 * - PostgreSQL: READ COMMITTED, set explicitly so that a server whose
 *   default_transaction_isolation differs does not change it. Each statement
 *   sees what was committed before it began, so a transaction that takes a
 *   lock and then reads (the audit chain's advisory lock, a user row's
 *   `SELECT ... FOR UPDATE`) reads the newest state. Under REPEATABLE READ
 *   or SERIALIZABLE the snapshot is taken at the first statement
 *   (https://www.postgresql.org/docs/current/transaction-iso.html), at the
 *   latest when the lock statement starts, before it waits: the read after
 *   the lock would miss what the previous holder committed. Read-then-write
 *   work therefore locks what it depends on (lockAuditChain, lockUser) or
 *   writes with a compare-and-set (`updateMany` with the expected value in
 *   `where`).
 */
import type { Database, DatabaseProvider, Tx } from "./database.ts";

export type { Database, DatabaseProvider, Tx };

/** Where a query runs: the database (autocommit) or an open transaction. */
export type Queryable = Database | Tx;

/** The dialect of each open transaction handle (see dialectOf). */
const dialects = new WeakMap<object, DatabaseProvider>();

/** The Prisma client a query function of db/ runs on. For db/ only. */
export function clientOf(db: Queryable): Tx {
  return "prisma" in db ? db.prisma : db;
}

/** The SQL dialect behind a handle. For db/ only. */
export function dialectOf(db: Queryable): DatabaseProvider {
  if ("prisma" in db) return db.provider;
  const dialect = dialects.get(db);
  if (!dialect) throw new Error("a transaction handle that transaction() did not open");
  return dialect;
}

/** Callbacks to run once each open transaction has committed (see afterCommit). */
const commitHooks = new WeakMap<object, (() => void)[]>();

/**
 * Runs `hook` once the transaction `tx` has committed (never if it rolls
 * back): for telling in-process listeners about rows they can only see after
 * the commit (the email worker's wake-up). A hook that throws is ignored.
 */
export function afterCommit(tx: Tx, hook: () => void): void {
  const hooks = commitHooks.get(tx);
  if (!hooks) throw new Error("a transaction handle that transaction() did not open");
  hooks.push(hook);
}

function runCommitHooks(hooks: (() => void)[]): void {
  for (const hook of hooks) {
    try {
      hook();
    } catch {
      // A listener's failure must not turn a committed transaction into an error.
    }
  }
}

/** A write that changes nothing, so that SQLite takes the write lock now (see above). */
const takeSqliteWriteLock = 'UPDATE "Lease" SET "name" = "name" WHERE 0';

export interface TransactionOptions {
  /**
   * How long the work may take, and how long to wait to start, in ms
   * (Prisma's `timeout` and `maxWait`; its defaults are 5 s and 2 s).
   */
  timeoutMs?: number;
}

/**
 * Runs `work` in one transaction: committed when it resolves, rolled back
 * when it throws. Pass `tx` to every query inside, never the Database (on
 * SQLite a query on the Database waits for the transaction to end), and do
 * not nest transactions.
 */
export async function transaction<T>(db: Database, work: (tx: Tx) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  const limits = options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs, maxWait: options.timeoutMs };
  const hooks: (() => void)[] = [];
  let result: T;
  if (db.provider === "sqlite") {
    result = await db.prisma.$transaction(async (tx) => {
      dialects.set(tx, "sqlite");
      commitHooks.set(tx, hooks);
      await tx.$executeRawUnsafe(takeSqliteWriteLock);
      return work(tx);
    }, limits);
  } else {
    result = await db.prisma.$transaction(
      async (tx) => {
        dialects.set(tx, "postgresql");
        commitHooks.set(tx, hooks);
        return work(tx);
      },
      // The client is typed as SQLite's (database.ts), whose only level is Serializable.
      { ...limits, isolationLevel: "ReadCommitted" as never },
    );
  }
  runCommitHooks(hooks);
  return result;
}
