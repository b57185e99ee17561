/**
 * Opens the database behind DATABASE_URL: SQLite (better-sqlite3) by default,
 * PostgreSQL (pg) for production and clusters. Both go through a Prisma client
 * generated from the same data model (prisma/models.prisma), so the rest of the
 * code sees one typed client whatever the provider.
 */
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";
import type { PrismaClient } from "./generated/sqlite/client.ts";
import type { DerivedKey } from "../crypto/master-keys.ts";

export type DatabaseProvider = "sqlite" | "postgresql";
export type { PrismaClient };
/** The client inside an interactive transaction. */
export type Tx = Omit<PrismaClient, "$connect" | "$disconnect" | "$on" | "$transaction" | "$extends">;

export interface Database {
  readonly prisma: PrismaClient;
  readonly provider: DatabaseProvider;
  /** DATABASE_URL, for the connections that db/ opens beside Prisma's (cache-versions.ts). */
  readonly url: string;
  /**
   * SQL statements sent to the database since it was opened, transaction
   * control included (gatehouse_db_statements_total, and the benchmark's
   * statements per request).
   */
  statements(): number;
  /**
   * The key that chains new audit events (an HMAC key derived from the newest
   * master key); undefined for a process that only migrates or reads.
   */
  readonly auditKey: DerivedKey | undefined;
  /** Throws when the database cannot answer a trivial query (readiness probe). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Path of the SQLite file named by a `file:` URL (relative to the working directory). */
export function sqlitePath(url: string): string {
  return url.slice("file:".length).replace(/^\/\/(?=\/)/, "").split("?")[0]!;
}

/** The files SQLite keeps beside a database: rollback journal, write-ahead log and its index. */
const sqliteSiblings = ["-journal", "-wal", "-shm"];

/**
 * Makes the SQLite file at `path` private before a driver opens it: creates
 * its directory 0700 (only when Gatehouse creates it: an existing directory is
 * the operator's), creates the file 0600, and narrows an existing file, or a
 * -journal/-wal/-shm sibling, that others can read. SQLite gives the journal
 * and WAL files it creates the database file's mode
 * (https://www.sqlite.org/tempfiles.html), so they follow. The database holds
 * password hashes and sealed keys: no other local account should read it.
 */
export function secureSqliteFile(path: string): void {
  if (path === ":memory:" || path === "") return;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Create the file only when it is missing ("wx" fails on an existing one
  // without opening it). Opening and closing an existing database file would
  // release every POSIX lock this process holds on it, through any other
  // connection: another process could then take the file for unused and
  // delete its write-ahead log under that connection, corrupting the database
  // (https://www.sqlite.org/howtocorrupt.html, section 2.2).
  try {
    closeSync(openSync(path, "wx", 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  for (const file of [path, ...sqliteSiblings.map((suffix) => path + suffix)]) {
    let mode: number;
    try {
      mode = statSync(file).mode;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw error;
    }
    if (mode & 0o077) chmodSync(file, mode & 0o700);
  }
}

/**
 * Pragmas for the SQLite connection (https://www.sqlite.org/pragma.html).
 * The migration (migrate.ts) puts the file in WAL mode, which is kept in the
 * file. In WAL mode, synchronous=NORMAL syncs the log at checkpoints instead
 * of at every commit (https://www.sqlite.org/wal.html#performance_considerations):
 * the database stays consistent after any crash, and a process crash loses
 * nothing; only an operating-system crash or power loss can lose the last
 * commits (tokens issued, or a revocation made, just before it). With FULL,
 * every token issued waited for an fsync. Deployments that need every
 * commit durable on one machine run PostgreSQL (docs/PERFORMANCE.md).
 */
const sqlitePragmas = ["journal_mode = WAL", "synchronous = NORMAL", "temp_store = MEMORY"];

/**
 * PostgreSQL connections per instance. Requests are short and the event loop
 * is single-threaded: a handful of connections keeps the database busy, and
 * every instance opening few leaves room under max_connections for many
 * instances (DATABASE_POOL_SIZE; docs/PERFORMANCE.md for the measurement).
 */
export const defaultPoolSize = 10;

export interface OpenOptions {
  /** PostgreSQL connections (DATABASE_POOL_SIZE). */
  poolSize?: number;
  /** Called with the SQL of every query (to count queries on hot paths). */
  onQuery?: (sql: string) => void;
  /** See Database.auditKey. */
  auditKey?: DerivedKey;
}

/** Opens a Prisma client for `url` through the matching driver adapter. */
export async function openDatabase(url: string, provider: DatabaseProvider, options: OpenOptions = {}): Promise<Database> {
  const log = options.onQuery ? ([{ emit: "event", level: "query" }] as const) : undefined;
  const counter = { statements: 0 };
  let prisma: PrismaClient;
  if (provider === "sqlite") {
    const path = sqlitePath(url);
    secureSqliteFile(path);
    const { PrismaBetterSQLite3 } = await import("@prisma/adapter-better-sqlite3");
    const { PrismaClient } = await import("./generated/sqlite/client.ts");
    // timeout: how long a writer waits for SQLite's lock (busy_timeout), in ms.
    const adapter = countStatements(new PrismaBetterSQLite3({ url: path, timeout: 10_000 }), counter);
    prisma = new PrismaClient({ adapter, log: log as never });
  } else {
    const { PrismaPg } = await import("@prisma/adapter-pg");
    const { PrismaClient } = await import("./generated/postgresql/client.ts");
    const adapter = countStatements(new PrismaPg({ connectionString: url, max: options.poolSize ?? defaultPoolSize }), counter);
    // Both generated clients have the same models and methods: only the SQL
    // dialect inside differs, so one type serves both.
    prisma = new PrismaClient({ adapter, log: log as never }) as unknown as PrismaClient;
  }
  if (options.onQuery) {
    const onQuery = options.onQuery;
    (prisma.$on as (event: "query", cb: (e: { query: string }) => void) => void)("query", (e) => onQuery(e.query));
  }
  await prisma.$connect();
  if (provider === "sqlite") {
    // One connection (the adapter's): pragmas set now hold for its life.
    for (const pragma of sqlitePragmas) await prisma.$queryRawUnsafe(`PRAGMA ${pragma}`);
  }
  return {
    prisma,
    provider,
    url,
    statements: () => counter.statements,
    auditKey: options.auditKey,
    async ping() {
      await prisma.$queryRawUnsafe("SELECT 1");
    },
    async close() {
      await prisma.$disconnect();
    },
  };
}

/** The driver adapter factory interface of Prisma 6 (@prisma/driver-adapter-utils), as far as it is used here. */
interface AdapterFactory {
  connect(): Promise<object>;
}

/**
 * Wraps a driver adapter factory so that every statement its connections
 * send is counted: queries, and BEGIN, COMMIT and ROLLBACK of transactions.
 * Methods are called on the adapter itself (its classes use private fields).
 */
function countStatements<F extends AdapterFactory>(factory: F, counter: { statements: number }): F {
  const counted = new Set(["queryRaw", "executeRaw", "executeScript"]);
  const wrap = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(object, property) {
        const value = Reflect.get(object, property, object) as unknown;
        if (typeof value !== "function") return value;
        if (property === "startTransaction") {
          return async (...args: unknown[]) => {
            counter.statements += 1;
            return wrap(await (value as (...a: unknown[]) => Promise<object>).apply(object, args));
          };
        }
        if (counted.has(property as string)) {
          return (...args: unknown[]) => {
            counter.statements += 1;
            return (value as (...a: unknown[]) => unknown).apply(object, args);
          };
        }
        return (value as (...a: unknown[]) => unknown).bind(object);
      },
    });
  return new Proxy(factory, {
    get(object, property) {
      const value = Reflect.get(object, property, object) as unknown;
      if (property === "connect" || property === "connectToShadowDb") {
        return async (...args: unknown[]) => wrap(await (value as (...a: unknown[]) => Promise<object>).apply(object, args));
      }
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(object) : value;
    },
  });
}
