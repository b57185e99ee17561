/**
 * Clients are cached in memory with their secrets unsealed
 * (oidc/client-store.ts), and a change made anywhere is seen by every
 * instance: through the admin services of this instance at once, through
 * another instance or plain SQL at once on SQLite and within the delivery of
 * a PostgreSQL notification (polled here for at most 5 s) on PostgreSQL.
 * While an instance cannot listen for changes it does not use its cache.
 */
import t from "tap";
import { randomBytes } from "node:crypto";
import { createClient, deleteClient, updateClient } from "../../src/services/clients.ts";
import { clientSecretContext } from "../../src/oidc/client-store.ts";
import { systemActor } from "../../src/services/actor.ts";
import { providers } from "../helpers/databases.ts";
import { startCluster, type Cluster, type Instance } from "../helpers/cluster.ts";

interface Credentials {
  clientId: string;
  clientSecret: string;
}

async function clientCredentials(instance: Instance, client: Credentials, scope?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${instance.url}/token`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ grant_type: "client_credentials", ...(scope && { scope }) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Retries `check` until it holds: immediately on SQLite, for up to 5 s on PostgreSQL (NOTIFY delivery). */
async function eventually(provider: string, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + (provider === "sqlite" ? 0 : 5000);
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function newClient(cluster: Cluster, scope = "admin:read"): Promise<Credentials> {
  const created = await createClient(cluster.instances[0]!.db, cluster.ring, { name: "Cached", grantTypes: ["client_credentials"], scope });
  return { clientId: created.client_id, clientSecret: created.client_secret! };
}

/** Seals a new secret onto the client's row with plain SQL, as an operator's script (or another instance) would. */
async function replaceSecretBySql(cluster: Cluster, instance: Instance, clientId: string): Promise<string> {
  const secret = randomBytes(32).toString("base64url");
  const sealed = await cluster.ring.encrypt(secret, clientSecretContext(clientId));
  const changed = await instance.db.prisma.$executeRaw`UPDATE "Client" SET "secretEncrypted" = ${sealed} WHERE "id" = ${clientId}`;
  if (changed !== 1) throw new Error("client row not updated");
  return secret;
}

for (const provider of providers(t)) {
  t.test(`client cache on ${provider}`, async (t) => {
    const cluster = await startCluster(t, provider);
    const [a, b] = cluster.instances as [Instance, Instance];
    // The key set watchers poll the database on a timer (jobs/key-set.ts): a
    // poll landing inside a counted request would be counted with it.
    for (const instance of cluster.instances) await instance.app.keySetWatcher.stop();

    // SQLite reads the version row per lookup; PostgreSQL is told of changes.
    const versionReads = provider === "sqlite" ? 1 : 0;

    await t.test("a cached client costs no Client SELECT: a client_credentials request is the token's INSERT", async (t) => {
      const client = await newClient(cluster);
      t.equal((await clientCredentials(b, client)).status, 200, "first request (fills the cache)");
      const before = b.db.statements();
      const res = await clientCredentials(b, client);
      t.equal(res.status, 200);
      t.equal(b.db.statements() - before, 1 + versionReads, `the INSERT${versionReads ? " and the version row" : ""}; no Client SELECT, no transaction`);
    });

    await t.test("a secret changed by SQL on another connection is used at once (the old one refused)", async (t) => {
      const client = await newClient(cluster);
      t.equal((await clientCredentials(b, client)).status, 200, "old secret, cached");
      const secret = await replaceSecretBySql(cluster, a, client.clientId);
      t.ok(await eventually(provider, async () => (await clientCredentials(b, client)).status === 401), "the old secret is refused");
      t.equal((await clientCredentials(b, { ...client, clientSecret: secret })).status, 200, "the new secret works");
    });

    await t.test("a client narrowed through the admin service of one instance is narrowed on both", async (t) => {
      const client = await newClient(cluster, "admin:read admin:write");
      t.equal((await clientCredentials(a, client, "admin:write")).status, 200);
      t.equal((await clientCredentials(b, client, "admin:write")).status, 200);
      await updateClient(a.db, client.clientId, { scope: "admin:read" }, systemActor);
      t.not((await clientCredentials(a, client, "admin:write")).status, 200, "on the instance that changed it: at once");
      t.ok(await eventually(provider, async () => (await clientCredentials(b, client, "admin:write")).status !== 200), "on the other instance");
      t.equal((await clientCredentials(b, client, "admin:read")).status, 200, "what is left still works");
    });

    await t.test("a deleted client is refused everywhere", async (t) => {
      const client = await newClient(cluster);
      t.equal((await clientCredentials(a, client)).status, 200);
      t.equal((await clientCredentials(b, client)).status, 200);
      await deleteClient(a.db, client.clientId, systemActor);
      t.equal((await clientCredentials(a, client)).status, 401, "on the instance that deleted it: at once");
      t.ok(await eventually(provider, async () => (await clientCredentials(b, client)).status === 401), "on the other instance");
    });

    if (provider === "postgresql") {
      await t.test("while the notification connection is down, the cache is not used", async (t) => {
        const client = await newClient(cluster);
        t.equal((await clientCredentials(b, client)).status, 200, "cached");
        // Cut the listening sessions of this test's database (what a database
        // restart or a network cut does), not those of tests running beside it.
        const cut = await a.db.prisma.$queryRaw<{ cut: boolean }[]>`
          SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity
          WHERE query = 'LISTEN gatehouse_cache' AND datname = current_database() AND pid <> pg_backend_pid()`;
        t.ok(cut.length >= 2, `the listeners of both instances were cut (${cut.length})`);
        // Let the instances see their connections end (they reconnect after 1 s).
        await new Promise((resolve) => setTimeout(resolve, 300));
        const secret = await replaceSecretBySql(cluster, a, client.clientId);
        t.equal((await clientCredentials(b, client)).status, 401, "the old secret is refused at once: no notification was needed");
        t.equal((await clientCredentials(b, { ...client, clientSecret: secret })).status, 200);
        // Once listening again, the cache works again and still follows changes.
        await new Promise((resolve) => setTimeout(resolve, 1500));
        const listening = await a.db.prisma.$queryRaw<{ n: bigint }[]>`
          SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'LISTEN gatehouse_cache' AND datname = current_database()`;
        t.ok(Number(listening[0]!.n) >= 2, "both instances listen again");
        const before = b.db.statements();
        t.equal((await clientCredentials(b, { ...client, clientSecret: secret })).status, 200);
        t.equal((await clientCredentials(b, { ...client, clientSecret: secret })).status, 200);
        t.equal(b.db.statements() - before, 3, "the cache is in use again (one Client SELECT, two INSERTs)");
        const third = await replaceSecretBySql(cluster, a, client.clientId);
        t.ok(await eventually(provider, async () => (await clientCredentials(b, { ...client, clientSecret: third })).status === 200), "and follows changes");
      });
    }
  });
}
