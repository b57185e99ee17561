/**
 * Throwaway databases for tests: a SQLite file in a temporary folder, and,
 * when TEST_DATABASE_URL is set, a fresh PostgreSQL database on that server.
 * Each is migrated with the same runner `npm start` uses.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { Test } from "tap";
import { migrateDatabase } from "../../src/db/migrate.ts";
import { openDatabase, type Database, type DatabaseProvider, type OpenOptions } from "../../src/db/database.ts";

export interface TestDatabase {
  provider: DatabaseProvider;
  url: string;
  /** Opens a Prisma-backed Database on it, closed at teardown. */
  open(options?: OpenOptions): Promise<Database>;
}

/** Why the PostgreSQL suite cannot run, or undefined when it can. */
export function postgresUnavailable(): string | undefined {
  if (process.env.TEST_DATABASE_URL) return undefined;
  return "TEST_DATABASE_URL is not set: the PostgreSQL suite needs a server (see README, Testing)";
}

/** The providers to run a suite against: SQLite always, PostgreSQL when configured. */
export function providers(t: Test): DatabaseProvider[] {
  const why = postgresUnavailable();
  if (!why) return ["sqlite", "postgresql"];
  // Under CI a missing PostgreSQL is a failure, not a skip (README).
  if (process.env.CI === "true") t.fail(why);
  else t.comment(`SKIPPING PostgreSQL: ${why}`);
  return ["sqlite"];
}

/** Creates and migrates a database for one test; removed at teardown. */
export async function createTestDatabase(t: Test, provider: DatabaseProvider): Promise<TestDatabase> {
  const opened: Database[] = [];
  let url: string;
  if (provider === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-test-"));
    url = `file:${join(dir, "test.db")}`;
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  } else {
    const admin = process.env.TEST_DATABASE_URL!;
    const name = `gatehouse_test_${randomBytes(6).toString("hex")}`;
    const client = new pg.Client({ connectionString: admin });
    await client.connect();
    await client.query(`CREATE DATABASE ${name}`);
    await client.end();
    const u = new URL(admin);
    u.pathname = `/${name}`;
    url = u.href;
    t.teardown(async () => {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    });
  }
  // tap runs teardowns last-added first: added after the removal above, this
  // closes the connections before the database is dropped.
  t.teardown(async () => {
    for (const db of opened.splice(0)) await db.close();
  });
  await migrateDatabase(url, provider);
  return {
    provider,
    url,
    async open(options) {
      const db = await openDatabase(url, provider, options);
      opened.push(db);
      return db;
    },
  };
}

/**
 * What a Gatehouse process (server or CLI) started by a test needs: a
 * throwaway SQLite database and keys directory, both removed at teardown.
 */
export async function processDatabase(t: Test): Promise<{ database: TestDatabase; env: { DATABASE_URL: string; KEYS_DIR: string } }> {
  const keysDir = mkdtempSync(join(tmpdir(), "gatehouse-keys-"));
  t.teardown(() => rmSync(keysDir, { recursive: true, force: true }));
  const database = await createTestDatabase(t, "sqlite");
  return { database, env: { DATABASE_URL: database.url, KEYS_DIR: keysDir } };
}
