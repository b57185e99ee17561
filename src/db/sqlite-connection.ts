/**
 * One SQLite connection shared by a whole process, taken in turns.
 *
 * @prisma/adapter-better-sqlite3 6.19 opens one better-sqlite3 connection per
 * client. Its mutex makes transactions wait for one another, but a statement
 * outside any transaction (another request's session lookup, token insert,
 * consumption mark) runs on that same connection whenever a transaction is
 * waiting between two of its statements, and so becomes part of it: it sees
 * the transaction's uncommitted rows, and when the transaction rolls back, the
 * statement's write, already acknowledged to its caller, is undone with it.
 * The adapter below gives the connection to one user at a time, in arrival
 * order: a statement outside a transaction waits while one is open, and a
 * transaction waits for the statement running. Consequently code inside a
 * transaction must pass its `tx` to every query: a query on the Database
 * there waits for the transaction it is part of, until Prisma's timeout.
 *
 * PostgreSQL needs none of this: each transaction has a pool connection of
 * its own.
 */
import type { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";

type Factory = Pick<PrismaBetterSQLite3, "provider" | "adapterName" | "connect">;
type Adapter = Awaited<ReturnType<Factory["connect"]>>;
type Transaction = Awaited<ReturnType<Adapter["startTransaction"]>>;

/** A first-come, first-served lock. */
class Turns {
  #held = false;
  readonly #waiting: (() => void)[] = [];

  /** Resolves with the function that ends this turn, once it is this caller's turn. */
  async take(): Promise<() => void> {
    if (this.#held) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#held = true;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#held = false;
    };
  }

  /**
   * Runs synchronous work in turn: at once when the connection is free
   * (nothing can come between the start and the end of synchronous work),
   * else when its turn comes.
   */
  async runSync<T>(work: () => T): Promise<T> {
    if (!this.#held) return work();
    return this.run(async () => work());
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    const end = await this.take();
    try {
      return await work();
    } finally {
      end();
    }
  }
}

/**
 * The connection as db.sql (database.ts) uses it: better-sqlite3's own
 * handle, for statements it prepares once, each run in turn.
 */
export interface SqliteInTurns {
  readonly client: { prepare(sql: string): unknown };
  inTurn<T>(work: () => T): Promise<T>;
}

function inTurns(adapter: Adapter): Adapter & SqliteInTurns {
  const turns = new Turns();
  return {
    client: (adapter as unknown as SqliteInTurns).client,
    inTurn: (work) => turns.runSync(work),
    provider: adapter.provider,
    adapterName: adapter.adapterName,
    queryRaw: (query) => turns.run(() => adapter.queryRaw(query)),
    executeRaw: (query) => turns.run(() => adapter.executeRaw(query)),
    executeScript: (script) => turns.run(() => adapter.executeScript(script)),
    async startTransaction(isolationLevel) {
      const end = await turns.take();
      let tx: Transaction;
      try {
        tx = await adapter.startTransaction(isolationLevel);
      } catch (error) {
        end();
        throw error;
      }
      // The transaction's own statements go straight to the connection;
      // the turn ends when Prisma commits or rolls back (or times it out).
      return {
        provider: tx.provider,
        adapterName: tx.adapterName,
        options: tx.options,
        queryRaw: (query) => tx.queryRaw(query),
        executeRaw: (query) => tx.executeRaw(query),
        commit: () => tx.commit().finally(end),
        rollback: () => tx.rollback().finally(end),
      };
    },
    ...(adapter.getConnectionInfo && { getConnectionInfo: () => adapter.getConnectionInfo!() }),
    dispose: () => adapter.dispose(),
  };
}

/** Wraps the better-sqlite3 adapter factory so that its connection is used in turns. */
export function sqliteInTurns(factory: Factory): Factory {
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: async () => inTurns(await factory.connect()),
  };
}
