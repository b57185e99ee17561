/**
 * The per-request scope of reads (src/oidc/request-scope.ts): within one
 * provider request (oidc-provider's own AsyncLocalStorage, Provider.ctx) a
 * token and its grant are read once; a write in the request forgets what it
 * read; two requests never share reads; outside a provider request nothing
 * is kept. The adapter runs here on a real database (SQLite, and PostgreSQL
 * when configured), inside oidc-provider's AsyncLocalStorage as ensureOIDC
 * (lib/helpers/initialize_app.js) runs it.
 */
import { randomBytes } from "node:crypto";
import t from "tap";
import pg from "pg";
import als from "oidc-provider/lib/helpers/als.js";
import type { AdapterPayload } from "oidc-provider";
import { createAdapterFactory } from "../../src/oidc/adapter.ts";
import { createClientStore } from "../../src/oidc/client-store.ts";
import { createMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { auditKeyOf } from "../../src/services/audit.ts";
import { storedIdsFor } from "../../src/crypto/stored-ids.ts";
import { requestReads } from "../../src/oidc/request-scope.ts";
import { createTestDatabase, providers } from "../helpers/databases.ts";

const id = (prefix: string) => `${prefix}-${randomBytes(9).toString("base64url")}`;

for (const provider of providers(t)) t.test(`the request scope (${provider})`, async (t) => {
  const ring = createMasterKeyRing([randomBytes(32)]);
  const queries: string[] = [];
  const database = await createTestDatabase(t, provider);
  const db = await database.open({ auditKey: auditKeyOf(ring), onQuery: (sql) => queries.push(sql) });
  const factory = createAdapterFactory(db, createClientStore(db, ring), storedIdsFor(ring));
  const tokens = factory("AccessToken");
  const grants = factory("Grant");
  /** Runs `fn` as inside a provider request with its own koa context. */
  const inRequest = <T>(fn: () => Promise<T>) => als.run({}, fn);

  async function issue() {
    const grantId = id("grant");
    const tokenId = id("token");
    const now = Math.floor(Date.now() / 1000);
    await grants.upsert(grantId, { iat: now, exp: now + 3600, kind: "Grant", jti: grantId, accountId: "a", clientId: "c" } as AdapterPayload, 3600);
    await tokens.upsert(tokenId, { iat: now, exp: now + 3600, kind: "AccessToken", jti: tokenId, accountId: "a", clientId: "c", grantId, scope: "openid" } as AdapterPayload, 3600);
    return { grantId, tokenId };
  }

  t.equal(requestReads(), undefined, "outside a provider request there is no scope");

  await t.test("a token and its grant are read in one statement, once per request", async (t) => {
    const { grantId, tokenId } = await issue();
    queries.length = 0;
    await inRequest(async () => {
      t.ok(await tokens.find(tokenId), "the token is found");
      t.ok(await grants.find(grantId), "its grant is found");
      t.ok(await tokens.find(tokenId), "the token again");
    });
    t.equal(queries.filter((q) => q.includes("OidcRecord")).length, 1, "one statement for all three");
  });

  await t.test("a write in the request forgets what it read", async (t) => {
    const { grantId, tokenId } = await issue();
    await inRequest(async () => {
      t.ok(await tokens.find(tokenId), "found before");
      await tokens.destroy(tokenId);
      t.equal(await tokens.find(tokenId), undefined, "gone after its destroy");
      t.ok(await grants.find(grantId), "the grant is still there");
      await grants.destroy(grantId);
      t.equal(await grants.find(grantId), undefined, "the grant is gone after its destroy");
    });
  });

  await t.test("a write while a token is being read is not undone when the read ends", async (t) => {
    const { grantId, tokenId } = await issue();
    await inRequest(async () => {
      // The token's read also brings its grant; the grant is revoked before
      // that read has answered. What the read found must not be kept.
      const reading = tokens.find(tokenId);
      const revoking = grants.destroy(grantId);
      t.ok(await reading, "the token was found");
      await revoking;
      t.equal(await grants.find(grantId), undefined, "the grant, revoked meanwhile, is not found");
    });
  });

  // On PostgreSQL a read can overtake a write of the same request: they take
  // two connections of the pool. Another connection holds the rows locked, so
  // the DELETE waits while the read answers from the rows as they were.
  if (provider === "postgresql") {
    await t.test("a read made while a write is out is forgotten when the write ends", async (t) => {
      const { tokenId } = await issue();
      const locker = new pg.Client({ connectionString: database.url });
      await locker.connect();
      t.teardown(() => locker.end());
      await locker.query("BEGIN");
      await locker.query(`SELECT 1 FROM "OidcRecord" FOR UPDATE`);
      await inRequest(async () => {
        const destroying = tokens.destroy(tokenId);
        await waitForLockWait(locker);
        t.ok(await tokens.find(tokenId), "while its DELETE waits, the token still reads as it was");
        await locker.query("COMMIT");
        await destroying;
        t.equal(await tokens.find(tokenId), undefined, "once the DELETE is done, the token is gone for the rest of the request");
      });
    });
  }

  await t.test("two requests do not share their reads", async (t) => {
    const { tokenId } = await issue();
    let first: ReturnType<typeof requestReads>;
    await inRequest(async () => {
      t.ok(await tokens.find(tokenId), "the first request reads the token");
      first = requestReads();
    });
    // Revoked between the two requests, outside either.
    await tokens.destroy(tokenId);
    await inRequest(async () => {
      t.not(requestReads(), first, "the second request has a scope of its own");
      t.equal(await tokens.find(tokenId), undefined, "and sees the revocation");
    });
  });

  await t.test("outside a provider request every read goes to the database", async (t) => {
    const { tokenId } = await issue();
    queries.length = 0;
    await tokens.find(tokenId);
    await tokens.find(tokenId);
    t.equal(queries.filter((q) => q.includes("OidcRecord")).length, 2, "two finds, two statements");
  });
});

/** Resolves once a statement of the database `client` is on is waiting for a lock. */
async function waitForLockWait(client: pg.Client): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await client.query(
      `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    if (rows[0].waiting > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("no statement waited for the lock within 5 s");
}
