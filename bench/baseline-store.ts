/**
 * A minimal persistent oidc-provider adapter for the benchmark's baseline
 * (bench/baseline.ts with BENCH_STORE=sqlite): every model instance is a row
 * of one SQLite table, through better-sqlite3, so that the bare provider pays
 * for storing each token as a database row, as Gatehouse does, and nothing
 * else of Gatehouse's.
 *
 * The table is shaped like Gatehouse's OidcRecord (prisma/models.prisma, the
 * SQLite migrations up to 20261126144316_partial_oidc_indexes): the same
 * columns, primary key (model, id) and indexes, partial where Gatehouse's are.
 * Unlike Gatehouse it stores ids in clear (no keyed hash), reads one row per
 * find (no token-and-grant join, no per-request cache) and keeps times as
 * epoch milliseconds rather than Prisma's ISO 8601 text. Pragmas as
 * Gatehouse's: journal_mode = WAL, synchronous = NORMAL. Statements are
 * prepared once and shared by every model.
 *
 * Contract: example/my_adapter.js in panva/node-oidc-provider; semantics as
 * its MemoryAdapter (lib/adapters/memory_adapter.js): a consumed row reads
 * with `consumed` (epoch seconds), an expired row reads as missing (it is
 * not swept: a benchmark run is short), revokeByGrantId deletes one model's
 * rows of the grant.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Adapter, AdapterPayload } from "oidc-provider";

const schema = `
  CREATE TABLE "OidcRecord" (
    "model" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "payload" TEXT NOT NULL,
    "grantId" TEXT,
    "uid" TEXT,
    "userCode" TEXT,
    "accountId" TEXT,
    "clientId" TEXT,
    "expiresAt" DATETIME,
    "consumedAt" DATETIME,
    "createdAt" DATETIME NOT NULL,
    PRIMARY KEY ("model", "id")
  );
  CREATE INDEX "OidcRecord_grantId_idx" ON "OidcRecord"("grantId") WHERE "grantId" IS NOT NULL;
  CREATE INDEX "OidcRecord_model_uid_idx" ON "OidcRecord"("model", "uid") WHERE "uid" IS NOT NULL;
  CREATE INDEX "OidcRecord_model_userCode_idx" ON "OidcRecord"("model", "userCode") WHERE "userCode" IS NOT NULL;
  CREATE INDEX "OidcRecord_model_accountId_idx" ON "OidcRecord"("model", "accountId") WHERE "accountId" IS NOT NULL;
  CREATE INDEX "OidcRecord_model_clientId_idx" ON "OidcRecord"("model", "clientId");
  CREATE INDEX "OidcRecord_expiresAt_idx" ON "OidcRecord"("expiresAt");
`;

interface Row {
  payload: string;
  expiresAt: number | null;
  consumedAt: number | null;
}

type Nullable = string | null;

function str(value: unknown): Nullable {
  return typeof value === "string" ? value : null;
}

/** A row's payload, or undefined when there is none or it has expired; `consumed` folded in. */
function live(row: Row | undefined): AdapterPayload | undefined {
  if (!row || (row.expiresAt !== null && row.expiresAt <= Date.now())) return undefined;
  const payload = JSON.parse(row.payload) as AdapterPayload;
  if (row.consumedAt !== null) payload.consumed = Math.floor(row.consumedAt / 1000);
  return payload;
}

/** The baseline's stores (BENCH_STORE, `--baseline-store`): oidc-provider's in-memory adapter, or this one. */
export const baselineStores = ["memory", "sqlite"] as const;
export type BaselineStore = (typeof baselineStores)[number];

/**
 * How the baseline serves HTTP (BENCH_HOST, `--baseline-host`): Node's own
 * server calling the provider, or a Fastify 5 app that mounts the provider
 * as Gatehouse does (a catch-all route, body parsers removed, the reply
 * hijacked) and does nothing else: no logger, hooks or limits.
 */
export const baselineHosts = ["node", "fastify"] as const;
export type BaselineHost = (typeof baselineHosts)[number];

/** `value` if it is one of `choices`; throws, naming `setting`, for anything else. */
export function choiceOf<T extends string>(setting: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new Error(`${setting} must be ${choices.join(" or ")}, not ${value}`);
  return value as T;
}

export interface SqliteStore {
  /** The `adapter` factory for oidc-provider's configuration. */
  adapter(model: string): Adapter;
  /** The database file. */
  readonly file: string;
  /** Closes the database and removes its folder. Idempotent. */
  close(): void;
}

/** Opens a fresh database in a new temporary folder (removed by close()). */
export function createSqliteStore(): SqliteStore {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-bench-baseline-"));
  const file = join(dir, "baseline.db");
  let db: Database.Database;
  try {
    db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.exec(schema);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const upsert = db.prepare<[string, string, string, Nullable, Nullable, Nullable, Nullable, Nullable, number | null, number | null, number]>(`
    INSERT INTO "OidcRecord" ("model", "id", "payload", "grantId", "uid", "userCode", "accountId", "clientId", "expiresAt", "consumedAt", "createdAt")
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT ("model", "id") DO UPDATE SET
      "payload" = excluded."payload", "grantId" = excluded."grantId", "uid" = excluded."uid", "userCode" = excluded."userCode",
      "accountId" = excluded."accountId", "clientId" = excluded."clientId", "expiresAt" = excluded."expiresAt",
      "consumedAt" = excluded."consumedAt"`);
  const find = db.prepare<[string, string], Row>(`SELECT "payload", "expiresAt", "consumedAt" FROM "OidcRecord" WHERE "model" = ? AND "id" = ?`);
  const findByUid = db.prepare<[string, string], Row>(
    `SELECT "payload", "expiresAt", "consumedAt" FROM "OidcRecord" WHERE "model" = ? AND "uid" = ? ORDER BY "createdAt" DESC LIMIT 1`,
  );
  const findByUserCode = db.prepare<[string, string], Row>(
    `SELECT "payload", "expiresAt", "consumedAt" FROM "OidcRecord" WHERE "model" = ? AND "userCode" = ? ORDER BY "createdAt" DESC LIMIT 1`,
  );
  const consume = db.prepare<[number, string, string]>(`UPDATE "OidcRecord" SET "consumedAt" = ? WHERE "model" = ? AND "id" = ?`);
  const destroy = db.prepare<[string, string]>(`DELETE FROM "OidcRecord" WHERE "model" = ? AND "id" = ?`);
  const revokeByGrantId = db.prepare<[string, string]>(`DELETE FROM "OidcRecord" WHERE "grantId" = ? AND "model" = ?`);

  let closed = false;
  return {
    file,
    adapter: (model: string): Adapter => ({
      async upsert(id, payload, expiresIn) {
        const now = Date.now();
        upsert.run(
          model,
          id,
          JSON.stringify(payload),
          str(payload.grantId),
          str(payload.uid),
          str(payload.userCode),
          str(payload.accountId),
          str(payload.clientId),
          // No expiresIn: no expiry (as MemoryAdapter).
          typeof expiresIn === "number" ? now + expiresIn * 1000 : null,
          typeof payload.consumed === "number" ? payload.consumed * 1000 : null,
          now,
        );
      },
      async find(id) {
        return live(find.get(model, id));
      },
      async findByUid(uid) {
        return live(findByUid.get(model, uid));
      },
      async findByUserCode(userCode) {
        return live(findByUserCode.get(model, userCode));
      },
      async consume(id) {
        consume.run(Date.now(), model, id);
      },
      async destroy(id) {
        destroy.run(model, id);
      },
      async revokeByGrantId(grantId) {
        revokeByGrantId.run(grantId, model);
      },
    }),
    close() {
      if (closed) return;
      closed = true;
      try {
        db.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
