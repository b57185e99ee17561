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
import { sqliteInTurns } from "./sqlite-connection.ts";

export type DatabaseProvider = "sqlite" | "postgresql";
export type { PrismaClient };
/** The client inside an interactive transaction. */
export type Tx = Omit<PrismaClient, "$connect" | "$disconnect" | "$on" | "$transaction" | "$extends">;

export interface Database {
  readonly prisma: PrismaClient;
  readonly provider: DatabaseProvider;
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

export interface OpenOptions {
  /** Called with the SQL of every query (to count queries on hot paths). */
  onQuery?: (sql: string) => void;
  /** See Database.auditKey. */
  auditKey?: DerivedKey;
}

/** Opens a Prisma client for `url` through the matching driver adapter. */
export async function openDatabase(url: string, provider: DatabaseProvider, options: OpenOptions = {}): Promise<Database> {
  const log = options.onQuery ? ([{ emit: "event", level: "query" }] as const) : undefined;
  let prisma: PrismaClient;
  if (provider === "sqlite") {
    const path = sqlitePath(url);
    secureSqliteFile(path);
    const { PrismaBetterSQLite3 } = await import("@prisma/adapter-better-sqlite3");
    const { PrismaClient } = await import("./generated/sqlite/client.ts");
    // timeout: how long a writer waits for SQLite's lock (busy_timeout), in ms.
    prisma = new PrismaClient({ adapter: sqliteInTurns(new PrismaBetterSQLite3({ url: path, timeout: 10_000 })), log: log as never });
  } else {
    const { PrismaPg } = await import("@prisma/adapter-pg");
    const { PrismaClient } = await import("./generated/postgresql/client.ts");
    // Both generated clients have the same models and methods: only the SQL
    // dialect inside differs, so one type serves both.
    prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: 10 }), log: log as never }) as unknown as PrismaClient;
  }
  if (options.onQuery) {
    const onQuery = options.onQuery;
    (prisma.$on as (event: "query", cb: (e: { query: string }) => void) => void)("query", (e) => onQuery(e.query));
  }
  await prisma.$connect();
  return {
    prisma,
    provider,
    auditKey: options.auditKey,
    async ping() {
      await prisma.$queryRawUnsafe("SELECT 1");
    },
    async close() {
      await prisma.$disconnect();
    },
  };
}
