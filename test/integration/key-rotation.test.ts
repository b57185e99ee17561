/**
 * The signing key lifecycle on two instances behind a balancer (README,
 * "Signing keys"): `gatehouse keys rotate`, `--now`, `keys remove` and
 * `keys import` through the real CLI; every instance serving a changed key
 * set within 10 seconds without a restart; tokens signed before a rotation
 * still verifying, tokens of a removed key no longer; next and retired keys
 * never signing; sign-ins and refresh tokens carrying over a provider swap;
 * automatic rotation by exactly one instance; readiness without a current
 * key. On SQLite and PostgreSQL.
 */
import t, { type Test } from "tap";
import { generateKeyPairSync } from "node:crypto";
import type { JWK } from "jose";
import { buildApp } from "../../src/app.ts";
import { loadMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { auditKeyOf } from "../../src/services/audit.ts";
import { ensureSigningKeys, signingAlgorithms } from "../../src/oidc/keys.ts";
import { parsePrivateJwks } from "../../src/oidc/key-import.ts";
import { importSigningKeys, keyPolicyOf, runKeyLifecycle } from "../../src/services/signing-keys.ts";
import { systemActor } from "../../src/services/actor.ts";
import { createUser } from "../../src/services/users.ts";
import { providers, createTestDatabase } from "../helpers/databases.ts";
import { startCluster, type Cluster } from "../helpers/cluster.ts";
import { testConfig } from "../helpers/config.ts";
import { runCli } from "../helpers/processes.ts";
import { Browser, authorizationUrl, isSignInPage, last, redeem, strongPassword, uniqueEmail } from "../helpers/http-flow.ts";
import { currentKids, fetchJwks, idTokenFrom, kidOf, makeTokenHolders, verifiesWith, waitFor, type TokenHolder } from "../helpers/signing-keys.ts";

/** The CLI's environment for a cluster: same database, same development master key. */
const cliEnv = (cluster: Cluster, extra: Record<string, string> = {}) => ({ DATABASE_URL: cluster.config.databaseUrl, KEYS_DIR: cluster.config.keysDir, ...extra });

async function cli(t: Test, cluster: Cluster, args: string[], stdin = "") {
  const result = await runCli(args, cliEnv(cluster), stdin);
  if (result.code !== 0) t.fail(`gatehouse ${args.join(" ")}: exit ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as unknown;
}

/** ID tokens for every algorithm from instance `base`, by alg. */
async function idTokensFrom(base: string, holders: TokenHolder[]): Promise<Record<string, string>> {
  const tokens: Record<string, string> = {};
  for (const holder of holders) tokens[holder.alg] = await idTokenFrom(base, holder);
  return tokens;
}

for (const provider of providers(t)) {
  t.test(`signing key rotation on two instances, ${provider}`, async (t) => {
    // A long KEY_PUBLISH_AHEAD: next keys wait for the operator's --now, not the clock.
    const cluster = await startCluster(t, provider, 2, { KEYS_POLL_INTERVAL: "1", KEY_PUBLISH_AHEAD: "1h" });
    const [a, b] = cluster.instances as [Cluster["instances"][0], Cluster["instances"][0]];
    const password = strongPassword();
    const user = await createUser(a.db, cluster.config.argon2, { email: uniqueEmail("keys"), password });
    const holders = await makeTokenHolders(a.db, cluster.ring, cluster.url, { id: user.id, email: user.email, password });
    const first = await currentKids(a.db);

    await t.test("the JWKS may be cached for a tenth of KEY_PUBLISH_AHEAD, at most 5 minutes", async (t) => {
      t.equal((await fetchJwks(a.url)).cacheControl, "public, max-age=300", "KEY_PUBLISH_AHEAD=1h: 300 s");
    });

    await t.test("keys rotate publishes a next key per algorithm on every instance; next keys sign nothing", async (t) => {
      const created = (await cli(t, cluster, ["keys", "rotate"])) as { kid: string; alg: string; state: string }[];
      const started = Date.now();
      t.same(created.map((k) => `${k.alg}:${k.state}`).sort(), ["ES256:next", "EdDSA:next", "RS256:next"]);
      for (const instance of [a, b]) {
        await waitFor("the next keys in the JWKS", async () => {
          const jwks = await fetchJwks(instance.url);
          return created.every((k) => jwks.keys.some((j) => j.kid === k.kid && j.key_ops?.includes("verify") && !j.key_ops.includes("sign"))) || undefined;
        });
      }
      t.ok(Date.now() - started < 10_000, `published by both instances within 10 s (${Date.now() - started} ms)`);
      const exported = (await cli(t, cluster, ["keys", "export"])) as { keys: { kid: string }[] };
      const served = await fetchJwks(b.url);
      const byKid = (keys: { kid: string }[]) => [...keys].sort((x, y) => x.kid.localeCompare(y.kid));
      t.same(byKid(exported.keys), byKid(served.keys), "keys export prints the JWKS the instances serve");
      for (const instance of [a, b]) {
        const tokens = await idTokensFrom(instance.url, holders);
        for (const alg of signingAlgorithms) t.equal(kidOf(tokens[alg]!), first[alg], `${alg} ID tokens from ${instance === a ? "A" : "B"} are still signed by the current key`);
      }
    });

    await t.test("rotate --now: instance B signs with the new key within 10 s; what was signed before still verifies", async (t) => {
      const before = await idTokensFrom(b.url, holders);
      // A sign-in that starts before the swap and ends after it.
      const browser = new Browser(cluster.url);
      const pending = await authorizationUrl(holders[0]!.client, { scope: "openid email offline_access", prompt: "login" });
      const signInPage = last(await browser.follow(pending.url));
      t.ok(isSignInPage(signInPage.body), "a sign-in page, before the rotation");

      await cli(t, cluster, ["keys", "rotate", "--now"]);
      const rotatedAt = Date.now();
      const now = await currentKids(a.db);
      for (const alg of signingAlgorithms) t.not(now[alg], first[alg], `a new current ${alg} key`);
      const onB = await waitFor("B to sign with the new RS256 key", async () => {
        const token = await idTokenFrom(b.url, holders[0]!);
        return kidOf(token) === now.RS256 ? token : undefined;
      });
      const delay = Date.now() - rotatedAt;
      t.ok(delay < 10_000, `B serves the new kid ${delay} ms after the rotation`);
      await waitFor("A to sign with the new RS256 key", async () => (kidOf(await idTokenFrom(a.url, holders[0]!)) === now.RS256 ? true : undefined));

      for (const instance of [a, b]) {
        const tokens = await idTokensFrom(instance.url, holders);
        for (const alg of signingAlgorithms) t.equal(kidOf(tokens[alg]!), now[alg], `${alg} ID tokens are signed by the new current key, never the retired one`);
      }
      const jwks = await fetchJwks(b.url);
      t.ok(await verifiesWith(onB, jwks, cluster.url), "B's new ID token verifies against the JWKS");
      for (const alg of signingAlgorithms) {
        t.ok(await verifiesWith(before[alg]!, jwks, cluster.url), `an ${alg} ID token signed before the rotation still verifies against the JWKS after it`);
        const retired = jwks.keys.find((k) => k.kid === first[alg]);
        t.same(retired?.key_ops, ["verify"], `the retired ${alg} key is published, for verification only`);
      }

      const callback = last(await browser.submit(signInPage, { email: user.email, password })).location!;
      t.ok(callback.searchParams.get("code"), "the sign-in started before the swap completes after it");
      const tokens = await redeem(holders[0]!.client, callback, pending);
      t.equal(kidOf(tokens.id_token!), now.RS256, "its ID token is signed by the new key");
      t.ok(await verifiesWith(tokens.id_token!, await fetchJwks(a.url), cluster.url));
    });

    await t.test("keys remove: a token signed by a removed key no longer verifies", async (t) => {
      // An ES256 token signed by the (now retired) first key, kept from before.
      const holder = holders.find((h) => h.alg === "ES256")!;
      const old = (await a.db.prisma.signingKey.findUniqueOrThrow({ where: { kid: first.ES256! } })).state;
      t.equal(old, "retired");
      const beforeRemoval = await idTokensFrom(cluster.url, [holder]);
      t.not(kidOf(beforeRemoval.ES256!), first.ES256, "new tokens do not use the retired key");
      // A token the retired key signed: signed by hand here, since the provider no longer signs with it.
      const row = await a.db.prisma.signingKey.findUniqueOrThrow({ where: { kid: first.ES256! } });
      const { privateJwk } = await privateJwkOf(cluster, row.kid);
      const { SignJWT, importJWK } = await import("jose");
      const signedByOld = await new SignJWT({ sub: user.id })
        .setProtectedHeader({ alg: "ES256", kid: row.kid })
        .setIssuer(cluster.url)
        .setAudience(holder.client.clientId)
        .setIssuedAt()
        .setExpirationTime("10m")
        .sign(await importJWK(privateJwk, "ES256"));
      t.ok(await verifiesWith(signedByOld, await fetchJwks(b.url), cluster.url), "verifies while the retired key is published");

      const removed = (await cli(t, cluster, ["keys", "remove", first.ES256!])) as { removed: { kid: string; state: string } };
      t.same(removed.removed, { kid: first.ES256, alg: "ES256", state: "retired" });
      for (const instance of [a, b]) {
        await waitFor("the removed key to leave the JWKS", async () => ((await fetchJwks(instance.url)).keys.some((k) => k.kid === first.ES256) ? undefined : true));
        t.notOk(await verifiesWith(signedByOld, await fetchJwks(instance.url), cluster.url), `${instance === a ? "A" : "B"}: no longer verifies`);
      }
    });

    await t.test("keys remove refuses the last current key of an algorithm", async (t) => {
      const current = await currentKids(a.db);
      const result = await runCli(["keys", "remove", current.RS256!], cliEnv(cluster));
      t.equal(result.code, 1);
      t.equal(result.stderr, `gatehouse: ${current.RS256} is the only current RS256 key: run gatehouse keys rotate --now first, then remove it\n`);
      t.same(await currentKids(a.db), current, "nothing changed");
      const unknown = await runCli(["keys", "remove", "no-such-kid"], cliEnv(cluster));
      t.equal(unknown.code, 1);
      t.equal(unknown.stderr, "gatehouse: no signing key has kid no-such-kid\n");
      // A thumbprint may start with dashes (1 kid in 4,096 starts with "--"): such a kid is a kid, not a flag.
      const dashed = await runCli(["keys", "remove", "--no-such-kid"], cliEnv(cluster));
      t.equal(dashed.stderr, "gatehouse: no signing key has kid --no-such-kid\n", "a kid starting with dashes is looked up");
      const secret = await runCli(["keys", "remove", "--password=hunter2-not-a-kid"], cliEnv(cluster));
      t.equal(secret.code, 2, "a secret as an argument is a usage error");
      t.notMatch(secret.stderr, /hunter2/, "and is not echoed back");
    });

    await t.test("emergency: rotate --now, then remove the compromised key at once", async (t) => {
      const compromised = await currentKids(a.db);
      const victim = await idTokenFrom(cluster.url, holders[0]!);
      await cli(t, cluster, ["keys", "rotate", "--now"]);
      await cli(t, cluster, ["keys", "remove", compromised.RS256!]);
      for (const instance of [a, b]) {
        await waitFor("the compromised key to leave the JWKS", async () => ((await fetchJwks(instance.url)).keys.some((k) => k.kid === compromised.RS256) ? undefined : true));
      }
      t.notOk(await verifiesWith(victim, await fetchJwks(a.url), cluster.url), "a token the compromised key signed no longer verifies");
      const fresh = await idTokenFrom(b.url, holders[0]!);
      t.ok(await verifiesWith(fresh, await fetchJwks(b.url), cluster.url), "new tokens verify");
    });

    await t.test("retired keys are removed by the lifecycle job once their retention has passed", async (t) => {
      const retired = await a.db.prisma.signingKey.findMany({ where: { state: "retired" } });
      t.ok(retired.length > 0, "there are retired keys");
      const policy = keyPolicyOf(cluster.config);
      const later = new Date(Date.now() + (policy.retention + 60) * 1000);
      const changes = await runKeyLifecycle(a.db, cluster.ring, { ...policy, rotationInterval: undefined }, systemActor, later);
      t.same(changes?.remove.map((k) => k.kid).sort(), retired.map((k) => k.kid).sort(), "every retired key is removed");
      await waitFor("B to drop the removed keys", async () => {
        const kids = (await fetchJwks(b.url)).keys.map((k) => k.kid);
        return retired.some((k) => kids.includes(k.kid)) ? undefined : true;
      });
      const events = await a.db.prisma.auditEvent.findMany({ where: { type: "signing_key.removed" } });
      t.ok(events.length >= retired.length, "each removal is audited");
    });
  });

  t.test(`automatic rotation with two instances started at once makes one new key set, ${provider}`, async (t) => {
    const database = await createTestDatabase(t, provider);
    const config = testConfig(t, { DATABASE_URL: database.url, KEYS_POLL_INTERVAL: "1", KEY_ROTATION_INTERVAL: "1h", KEY_PUBLISH_AHEAD: "1h" });
    const ring = loadMasterKeyRing(config);
    const seed = await database.open({ auditKey: auditKeyOf(ring) });
    await ensureSigningKeys(seed, ring);
    // The key set is two hours old: a rotation is due at start.
    await seed.prisma.signingKey.updateMany({ data: { createdAt: new Date(Date.now() - 2 * 3600_000), activatedAt: new Date(Date.now() - 2 * 3600_000) } });
    const dbs = await Promise.all([0, 1].map(() => database.open({ auditKey: auditKeyOf(ring) })));
    const apps = await Promise.all(dbs.map((db) => buildApp({ config, db, ring, logger: false })));
    for (const app of apps) t.teardown(() => app.close());
    // Both instances' first rounds and two more lifecycle runs on connections of their own,
    // at the same moment; then the instances' timers run a few more rounds.
    const others = await Promise.all([0, 1].map(() => database.open({ auditKey: auditKeyOf(ring) })));
    await Promise.all([...apps.map((app) => app.keySetWatcher.check()), ...others.map((db) => runKeyLifecycle(db, ring, keyPolicyOf(config), systemActor))]);
    await Promise.all(apps.map((app) => app.keySetWatcher.check()));
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const next = await seed.prisma.signingKey.findMany({ where: { state: "next" } });
    t.same(next.map((k) => k.alg).sort(), ["ES256", "EdDSA", "RS256"], "one next key per algorithm, not two");
    t.equal(await seed.prisma.signingKey.count(), 6, "three current and three next keys");
    t.equal(await seed.prisma.auditEvent.count({ where: { type: "signing_key.created" } }), 3, "three creations audited");
    for (const app of apps) {
      const jwks = JSON.parse((await app.inject({ method: "GET", url: "/jwks" })).body) as { keys: { kid: string }[] };
      t.ok(next.every((k) => jwks.keys.some((j) => j.kid === k.kid)), "each instance publishes the new keys");
    }
  });
}

t.test("readiness: not ready while an algorithm has no current key; imported keys are promoted and sign", async (t) => {
  const database = await createTestDatabase(t, "sqlite");
  const config = testConfig(t, { DATABASE_URL: database.url, KEYS_POLL_INTERVAL: "1" });
  const ring = loadMasterKeyRing(config);
  const db = await database.open({ auditKey: auditKeyOf(ring) });
  // Keys brought from another IdP into an empty database: next keys only.
  const pem = (type: "rsa" | "ec" | "ed25519") =>
    (type === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : type === "ec" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("ed25519")).privateKey.export({ format: "jwk" });
  const imported = await parsePrivateJwks(JSON.stringify({ keys: [{ ...pem("rsa"), kid: "old-idp-rsa" }, { ...pem("ec"), kid: "old-idp-ec" }] }));
  await importSigningKeys(db, ring, imported, systemActor);
  const app = await buildApp({ config, db, ring, logger: false });
  t.teardown(() => app.close());
  const notReady = await app.inject({ method: "GET", url: "/readyz" });
  t.equal(notReady.statusCode, 503);
  t.same(JSON.parse(notReady.body), { status: "not_ready", checks: { database: "ok", keys: "no current key for RS256, ES256, EdDSA" } });
  await app.keySetWatcher.check();
  const ready = await app.inject({ method: "GET", url: "/readyz" });
  t.equal(ready.statusCode, 200, "ready once the lifecycle job has made a current key for each algorithm");
  const kids = await currentKids(db);
  t.equal(kids.RS256, "old-idp-rsa", "the imported RSA key, kid kept, is current at once: nothing else could sign RS256");
  t.equal(kids.ES256, "old-idp-ec");
  t.ok(kids.EdDSA, "EdDSA, which was not imported, got a new key");
});

t.test("keys import through the CLI: next keys, kid kept, sealed; a refused key set writes nothing", async (t) => {
  const database = await createTestDatabase(t, "sqlite");
  const config = testConfig(t, { DATABASE_URL: database.url });
  const ring = loadMasterKeyRing(config);
  const db = await database.open({ auditKey: auditKeyOf(ring) });
  await ensureSigningKeys(db, ring);
  const env = { DATABASE_URL: database.url, KEYS_DIR: config.keysDir };
  const jwk = (type: "rsa" | "ec" | "ed25519") =>
    (type === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : type === "ec" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("ed25519")).privateKey.export({ format: "jwk" });
  const snapshot = async () => JSON.stringify(await db.prisma.signingKey.findMany({ orderBy: { kid: "asc" } }));

  const before = await snapshot();
  const { d: _d, ...publicOnly } = jwk("ec");
  for (const [input, line] of [
    [{ keys: [{ ...jwk("rsa"), kid: "fine" }, { ...publicOnly, kid: "pub" }] }, 'gatehouse: key 1 (kid "pub") is a public key only: import needs the private key (member "d")'],
    [{ keys: [{ kty: "oct", k: "c2VjcmV0", kid: "sym" }] }, 'gatehouse: key 0 (kid "sym") is a symmetric (oct) key: only RSA, EC P-256 and Ed25519 private keys can sign tokens that relying parties verify'],
  ] as const) {
    const refused = await runCli(["keys", "import"], env, JSON.stringify(input));
    t.equal(refused.code, 1);
    t.equal(refused.stderr, `${line}\n`, "one clear line");
    t.equal(refused.stdout, "");
  }
  t.equal(await snapshot(), before, "nothing was written");

  const imported = await runCli(["keys", "import"], env, JSON.stringify({ keys: [{ ...jwk("rsa"), kid: "legacy-rsa" }, { ...jwk("ed25519"), kid: "legacy-ed", alg: "EdDSA" }] }));
  t.equal(imported.code, 0, imported.stderr);
  t.match(JSON.parse(imported.stdout), [
    { kid: "legacy-rsa", alg: "RS256", state: "next", activates_at: String },
    { kid: "legacy-ed", alg: "EdDSA", state: "next" },
  ]);
  const row = await db.prisma.signingKey.findUniqueOrThrow({ where: { kid: "legacy-rsa" } });
  t.notMatch(row.privateJwkEncrypted, /"d"/, "the private key is stored sealed");
  t.notOk("d" in (row.publicJwk as object), "the public JWK has no private member");
  const again = await runCli(["keys", "import"], env, JSON.stringify({ keys: [{ ...jwk("ec"), kid: "legacy-rsa" }] }));
  t.equal(again.stderr, "gatehouse: a signing key with kid legacy-rsa already exists: nothing was imported\n");
});

/** A key's private JWK, unsealed with the cluster's master key (for signing a token by hand). */
async function privateJwkOf(cluster: Cluster, kid: string): Promise<{ privateJwk: JWK }> {
  const { loadKeySet } = await import("../../src/oidc/keys.ts");
  const keySet = await loadKeySet(cluster.instances[0]!.db, cluster.ring);
  const jwk = keySet.keys.find((k) => k.kid === kid);
  if (!jwk) throw new Error(`no key ${kid}`);
  const { key_ops: _ops, ...privateJwk } = jwk;
  return { privateJwk };
}
