/**
 * Opens the database behind DATABASE_URL: SQLite (better-sqlite3) by default,
 * PostgreSQL (pg) for production and clusters. Both go through a Prisma client
 * generated from the same data model (prisma/models.prisma), so the rest of the
 * code sees one typed client whatever the provider.
 */
import { createHash } from "node:crypto";
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";
import type { PrismaClient } from "./generated/sqlite/client.ts";
import type { DerivedKey } from "../crypto/master-keys.ts";
import { numbered } from "./sql.ts";
import { sqliteInTurns, type SqliteInTurns } from "./sqlite-connection.ts";

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
   * Hand-written SQL sent straight to Prisma's driver adapter, on Prisma's
   * own connection (SQLite) or pool (PostgreSQL): for the few statements on
   * every token request (see sql.ts). Everything else goes through `prisma`.
   */
  readonly sql: SqlDriver;
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

/** A value bound to a `?` placeholder. */
export type SqlValue = string | number | boolean | Date | null;

/** A row, by column name; dates as the driver returns them (see sql.ts, toDate). */
export type SqlRow = Record<string, unknown>;

export interface SqlDriver {
  /** Runs a SELECT (or a statement with RETURNING) and returns its rows. */
  query(sql: string, args: readonly SqlValue[]): Promise<SqlRow[]>;
  /** Runs an INSERT, UPDATE or DELETE and returns how many rows it changed. */
  execute(sql: string, args: readonly SqlValue[]): Promise<number>;
  /**
   * SQLite only: runs synchronous `work` as one `BEGIN IMMEDIATE` transaction
   * in a single turn of the connection, committed when it returns, rolled
   * back when it throws. For short read-then-write work that needs nothing
   * but SQL and computation (the audit chain's append); anything else uses
   * transaction() (transaction.ts).
   */
  immediate?<T>(work: (sql: SyncSql) => T): Promise<T>;
}

/** db.sql inside SqlDriver.immediate: the same statements, run synchronously. */
export interface SyncSql {
  query(sql: string, args: readonly SqlValue[]): SqlRow[];
  execute(sql: string, args: readonly SqlValue[]): number;
}

export interface OpenOptions {
  /** PostgreSQL connections (DATABASE_POOL_SIZE). */
  poolSize?: number;
  /** Called with the SQL of every query (to count queries on hot paths). */
  onQuery?: (sql: string, args: readonly unknown[]) => void;
  /** See Database.auditKey. */
  auditKey?: DerivedKey;
}

/** Opens a Prisma client for `url` through the matching driver adapter. */
export async function openDatabase(url: string, provider: DatabaseProvider, options: OpenOptions = {}): Promise<Database> {
  const counter: StatementCounter = { statements: 0, adapter: undefined, prepared: new Map(), onQuery: options.onQuery };
  let prisma: PrismaClient;
  if (provider === "sqlite") {
    const path = sqlitePath(url);
    secureSqliteFile(path);
    const { PrismaBetterSQLite3 } = await import("@prisma/adapter-better-sqlite3");
    const { PrismaClient } = await import("./generated/sqlite/client.ts");
    // timeout: how long a writer waits for SQLite's lock (busy_timeout), in ms.
    const adapter = countStatements(sqliteInTurns(new PrismaBetterSQLite3({ url: path, timeout: 10_000 })), counter);
    prisma = new PrismaClient({ adapter });
  } else {
    const { PrismaPg } = await import("@prisma/adapter-pg");
    const { PrismaClient } = await import("./generated/postgresql/client.ts");
    // db.sql's statements are named (prepared): each connection parses and
    // plans one once, then only binds and executes it (PostgreSQL's extended
    // protocol). Prisma's own stay unnamed: their texts vary without bound.
    const pg = new PrismaPg(
      { connectionString: url, max: options.poolSize ?? defaultPoolSize },
      // pg sends a query without a name (undefined) as an unnamed statement.
      { statementNameGenerator: ((query: { sql: string }) => counter.prepared.get(query.sql)) as (query: { sql: string }) => string },
    );
    const adapter = countStatements(pg, counter);
    // Both generated clients have the same models and methods: only the SQL
    // dialect inside differs, so one type serves both.
    prisma = new PrismaClient({ adapter }) as unknown as PrismaClient;
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
    sql: driverOf(counter, provider),
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

/** What a connected driver adapter offers (@prisma/driver-adapter-utils, SqlQueryable). */
interface DriverAdapter {
  queryRaw(query: DriverQuery): Promise<{ columnNames: string[]; rows: unknown[][] }>;
  executeRaw(query: DriverQuery): Promise<number>;
}

interface DriverQuery {
  sql: string;
  args: SqlValue[];
  argTypes: { scalarType: string; arity: "scalar" }[];
}

interface StatementCounter {
  statements: number;
  /** The adapter Prisma connected (counted), once it has. */
  adapter: DriverAdapter | undefined;
  /** PostgreSQL: the prepared statement name of each text db.sql sends. */
  prepared: Map<string, string>;
  onQuery: OpenOptions["onQuery"];
}

/** A short, stable name per SQL text for PostgreSQL's prepared statements. */
function statementName(sql: string): string {
  return `g_${createHash("sha256").update(sql).digest("base64url").slice(0, 22)}`;
}

function argTypeOf(value: SqlValue): DriverQuery["argTypes"][number] {
  const scalarType = value instanceof Date ? "datetime" : typeof value === "number" ? "float" : typeof value === "boolean" ? "boolean" : "string";
  return { scalarType, arity: "scalar" };
}

/**
 * db.sql: statements written with `?` placeholders, run on the connection
 * that Prisma's driver adapter opened, without Prisma's query compiler,
 * which costs more than the statement itself on the hot paths
 * (docs/PERFORMANCE.md).
 */
function driverOf(counter: StatementCounter, provider: DatabaseProvider): SqlDriver {
  const adapter = (): DriverAdapter => {
    if (!counter.adapter) throw new Error("the database is not connected");
    return counter.adapter;
  };
  return provider === "sqlite" ? sqliteDriver(counter, adapter) : postgresDriver(counter, adapter);
}

/** The better-sqlite3 statement API, as far as it is used here. */
interface SqliteStatement {
  all(...args: unknown[]): unknown[];
  run(...args: unknown[]): { changes: number };
}

/** At most this many prepared statements are kept per connection (db.sql's texts are few). */
const maxPreparedStatements = 500;

/**
 * SQLite: better-sqlite3 is synchronous and in-process, so the adapter adds
 * only its argument mapping and a fresh `prepare` per call, which is most of
 * a small statement's cost. Here each text is prepared once on the adapter's
 * own connection and values are bound as the adapter binds them
 * (dates as ISO 8601 text with "+00:00", booleans as 0/1), so rows written
 * either way read the same.
 */
function sqliteDriver(counter: StatementCounter, adapter: () => DriverAdapter): SqlDriver {
  const statements = new Map<string, SqliteStatement>();
  const connection = () => adapter() as unknown as SqliteInTurns;
  const prepare = (sql: string): SqliteStatement => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = connection().client.prepare(sql) as SqliteStatement;
      if (statements.size >= maxPreparedStatements) statements.clear();
      statements.set(sql, statement);
    }
    counter.statements += 1;
    return statement;
  };
  const bind = (args: readonly SqlValue[]) =>
    args.map((value) => (value instanceof Date ? value.toISOString().replace("Z", "+00:00") : typeof value === "boolean" ? Number(value) : value));
  // Each statement takes its turn on the connection (sqlite-connection.ts):
  // at once when no transaction is open, as better-sqlite3 runs it to the
  // end before anything else can.
  const sync: SyncSql = {
    query(sql, args) {
      counter.onQuery?.(sql, args);
      return prepare(sql).all(...bind(args)) as SqlRow[];
    },
    execute(sql, args) {
      counter.onQuery?.(sql, args);
      return prepare(sql).run(...bind(args)).changes;
    },
  };
  return {
    query: (sql, args) => connection().inTurn(() => sync.query(sql, args)),
    execute: (sql, args) => connection().inTurn(() => sync.execute(sql, args)),
    immediate: (work) =>
      connection().inTurn(() => {
        // IMMEDIATE: the write lock first, waited for under busy_timeout,
        // so that what is read cannot be changed before the write.
        sync.execute("BEGIN IMMEDIATE", []);
        try {
          const result = work(sync);
          sync.execute("COMMIT", []);
          return result;
        } catch (error) {
          sync.execute("ROLLBACK", []);
          throw error;
        }
      }),
  };
}

/**
 * PostgreSQL: through the adapter's pool, with `?` numbered $1, $2, ... once
 * per text and each text a named (prepared) statement.
 */
function postgresDriver(counter: StatementCounter, adapter: () => DriverAdapter): SqlDriver {
  const texts = new Map<string, string>();
  const queryOf = (sql: string, args: readonly SqlValue[]): DriverQuery => {
    let text = texts.get(sql);
    if (text === undefined) {
      text = numbered(sql);
      texts.set(sql, text);
      counter.prepared.set(text, statementName(text));
    }
    return { sql: text, args: [...args], argTypes: args.map(argTypeOf) };
  };
  return {
    async query(sql, args) {
      const { columnNames, rows } = await adapter().queryRaw(queryOf(sql, args));
      return rows.map((row) => {
        const object: SqlRow = {};
        for (let i = 0; i < columnNames.length; i++) object[columnNames[i]!] = row[i];
        return object;
      });
    },
    execute(sql, args) {
      return adapter().executeRaw(queryOf(sql, args));
    },
  };
}

/**
 * Wraps a driver adapter factory so that every statement its connections
 * send is counted: queries, and BEGIN, COMMIT and ROLLBACK of transactions.
 * Methods are called on the adapter itself (its classes use private fields).
 */
function countStatements<F extends AdapterFactory>(factory: F, counter: StatementCounter): F {
  const counted = new Set(["queryRaw", "executeRaw", "executeScript"]);
  const wrap = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(object, property) {
        const value = Reflect.get(object, property, object) as unknown;
        if (typeof value !== "function") return value;
        if (property === "startTransaction") {
          return async (...args: unknown[]) => {
            counter.statements += 1;
            counter.onQuery?.("BEGIN", []);
            return wrap(await (value as (...a: unknown[]) => Promise<object>).apply(object, args));
          };
        }
        if (counted.has(property as string)) {
          return (...args: unknown[]) => {
            counter.statements += 1;
            if (counter.onQuery) {
              const query = args[0] as DriverQuery | string;
              if (typeof query === "string") counter.onQuery(query, []);
              else counter.onQuery(query.sql, query.args);
            }
            return (value as (...a: unknown[]) => unknown).apply(object, args);
          };
        }
        return (value as (...a: unknown[]) => unknown).bind(object);
      },
    });
  return new Proxy(factory, {
    get(object, property) {
      const value = Reflect.get(object, property, object) as unknown;
      if (property === "connect") {
        return async (...args: unknown[]) => {
          const adapter = wrap(await (value as (...a: unknown[]) => Promise<object>).apply(object, args));
          counter.adapter = adapter as unknown as DriverAdapter;
          return adapter;
        };
      }
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(object) : value;
    },
  });
}
