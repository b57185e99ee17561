/**
 * Applies the checked-in migrations (prisma/<provider>/migrations) and records
 * them in Prisma's own `_prisma_migrations` table with Prisma's checksum (the
 * SHA-256 of migration.sql), so `prisma migrate status` and `prisma migrate
 * deploy` agree with what ran here.
 *
 * Why not spawn `prisma migrate deploy`: with the JavaScript schema engine that
 * these machines need (shared/NOTES.md), Prisma 6.19's CLI leaves a 10-second
 * timer behind on PostgreSQL, so every start-up and every test database would
 * wait 10 s for the CLI to exit. Applying plain SQL files takes milliseconds.
 *
 * Several instances may start at once: PostgreSQL runs the whole set in one
 * transaction under an advisory lock (DDL is transactional there); SQLite runs
 * it under BEGIN IMMEDIATE, which serialises writers.
 */
import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { DatabaseProvider } from "./database.ts";
import { secureSqliteFile, sqlitePath } from "./database.ts";

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

const migrationsRoot = join(dirname(fileURLToPath(import.meta.url)), "../../prisma");

/** The migrations of one provider, in name (timestamp) order. */
export function listMigrations(provider: DatabaseProvider): Migration[] {
  const dir = join(migrationsRoot, provider, "migrations");
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, "migration.sql")))
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    });
}

export class MigrationError extends Error {
  readonly code = "migration_failed";
  override readonly name = "MigrationError";
}

const createTable: Record<DatabaseProvider, string> = {
  sqlite: `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" TEXT PRIMARY KEY NOT NULL, "checksum" TEXT NOT NULL, "finished_at" DATETIME,
    "migration_name" TEXT NOT NULL, "logs" TEXT, "rolled_back_at" DATETIME,
    "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0)`,
  postgresql: `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0)`,
};

/** Decides what to apply; refuses a database whose history differs from ours. */
function pending(migrations: Migration[], applied: Map<string, string>): Migration[] {
  for (const [name, checksum] of applied) {
    const local = migrations.find((m) => m.name === name);
    if (!local) throw new MigrationError(`database has migration ${name}, which this version does not know`);
    if (local.checksum !== checksum) throw new MigrationError(`migration ${name} was changed after it was applied`);
  }
  return migrations.filter((m) => !applied.has(m.name));
}

/** Applies pending migrations; returns the names applied. */
export async function migrateDatabase(url: string, provider: DatabaseProvider): Promise<string[]> {
  const migrations = listMigrations(provider);
  return provider === "sqlite" ? migrateSqlite(url, migrations) : migratePostgres(url, migrations);
}

async function migrateSqlite(url: string, migrations: Migration[]): Promise<string[]> {
  const { default: Sqlite } = await import("better-sqlite3");
  const path = sqlitePath(url);
  // The first process to open the file at start-up: it creates it private.
  secureSqliteFile(path);
  const db = new Sqlite(path, { timeout: 30_000 });
  try {
    // WAL lets readers work while a writer commits; the setting is kept in the file.
    db.pragma("journal_mode = WAL");
    db.exec(createTable.sqlite);
    db.exec("BEGIN IMMEDIATE");
    try {
      const rows = db
        .prepare(`SELECT migration_name, checksum FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`)
        .all() as { migration_name: string; checksum: string }[];
      const todo = pending(migrations, new Map(rows.map((r) => [r.migration_name, r.checksum])));
      const record = db.prepare(
        `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
         VALUES (?, ?, ?, ?, ?, 1)`,
      );
      for (const m of todo) {
        const started = new Date().toISOString();
        db.exec(m.sql);
        record.run(randomUUID(), m.checksum, new Date().toISOString(), m.name, started);
      }
      db.exec("COMMIT");
      return todo.map((m) => m.name);
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  } finally {
    db.close();
  }
}

/** Any fixed number: the advisory lock every instance takes while migrating. */
const migrationLockId = 7_246_118_341;

async function migratePostgres(url: string, migrations: Migration[]): Promise<string[]> {
  const { default: pg } = await import("pg");
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("BEGIN");
    try {
      await client.query("SELECT pg_advisory_xact_lock($1)", [migrationLockId]);
      await client.query(createTable.postgresql);
      const { rows } = await client.query<{ migration_name: string; checksum: string }>(
        `SELECT migration_name, checksum FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
      );
      const todo = pending(migrations, new Map(rows.map((r) => [r.migration_name, r.checksum])));
      for (const m of todo) {
        const started = new Date();
        await client.query(m.sql); // no parameters: the simple protocol runs the whole script
        await client.query(
          `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES ($1, $2, now(), $3, $4, 1)`,
          [randomUUID(), m.checksum, m.name, started],
        );
      }
      await client.query("COMMIT");
      return todo.map((m) => m.name);
    } catch (error) {
      await client.query("ROLLBACK");
      throw error;
    }
  } finally {
    await client.end();
  }
}
