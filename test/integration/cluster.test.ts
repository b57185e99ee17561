/**
 * Several instances behave as one (README): sessions and
 * interactions made on one instance work on another, a revocation on one is
 * seen by the others at once, and with REDIS_URL the brute-force and rate
 * limits are shared.
 */
import t from "tap";
import * as oidc from "openid-client";
import { createClient } from "../../src/services/clients.ts";
import { createUser } from "../../src/services/users.ts";
import { providers } from "../helpers/databases.ts";
import { startCluster, type Cluster } from "../helpers/cluster.ts";
import { Browser, authorizationUrl, last, isSignInPage, redeem, redirectUri, strongPassword, uniqueEmail, type TestClient } from "../helpers/http-flow.ts";

async function clientOf(cluster: Cluster, name: string, scope = "openid email offline_access"): Promise<TestClient> {
  const created = await createClient(cluster.instances[0]!.db, cluster.ring, { name, redirectUris: [redirectUri], scope, firstParty: true });
  const config = await oidc.discovery(new URL(cluster.url), created.client_id, created.client_secret!, oidc.ClientSecretBasic(created.client_secret!), {
    execute: [oidc.allowInsecureRequests],
  });
  return { clientId: created.client_id, clientSecret: created.client_secret!, config };
}

async function introspectOn(url: string, client: TestClient, token: string): Promise<boolean> {
  const res = await fetch(`${url}/token/introspection`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ token }),
  });
  return ((await res.json()) as { active: boolean }).active;
}

for (const provider of providers(t)) {
  t.test(`two instances on ${provider}`, async (t) => {
    const cluster = await startCluster(t, provider);
    const [a, b] = cluster.instances as [Cluster["instances"][0], Cluster["instances"][0]];
    const password = strongPassword();
    const user = await createUser(a.db, cluster.config.argon2, { email: uniqueEmail("cluster"), password });
    const client = await clientOf(cluster, "Balanced app");

    await t.test("a sign-in flow whose requests alternate between the instances completes", async (t) => {
      const browser = new Browser(cluster.url);
      const pending = await authorizationUrl(client, { scope: "openid email offline_access", prompt: "consent" });
      const before = cluster.served.length;
      let page = last(await browser.follow(pending.url));
      t.ok(isSignInPage(page.body), "the sign-in page");
      page = last(await browser.submit(page, { email: user.email, password }));
      const callback = page.location!;
      t.ok(callback.searchParams.get("code"), "a code");
      const served = cluster.served.slice(before);
      t.ok(served.includes(0) && served.includes(1), `both instances served the flow (${served.join(",")})`);
      const tokens = await redeem(client, callback, pending);
      t.equal(tokens.claims()?.sub, user.id);

      await t.test("a session made on one instance is valid on the other", async (t) => {
        for (let i = 0; i < 2; i++) {
          const again = await authorizationUrl(client, { scope: "openid email" });
          const answer = last(await browser.follow(again.url));
          t.ok(answer.location?.searchParams.get("code"), `silent sign-in ${i + 1}: a code without any page`);
        }
      });

      await t.test("a revocation on one instance is seen by the other at once", async (t) => {
        t.equal(await introspectOn(a.url, client, tokens.access_token), true, "active on A");
        t.equal(await introspectOn(b.url, client, tokens.access_token), true, "active on B");
        const revoke = await fetch(`${a.url}/token/revocation`, {
          method: "POST",
          headers: {
            authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")}`,
            "content-type": "application/x-www-form-urlencoded",
          },
          body: new URLSearchParams({ token: tokens.refresh_token!, token_type_hint: "refresh_token" }),
        });
        t.equal(revoke.status, 200, "revoked on A");
        t.equal(await introspectOn(b.url, client, tokens.refresh_token!), false, "the refresh token is inactive on B");
        t.equal(await introspectOn(b.url, client, tokens.access_token), false, "and so is the access token of its grant");
      });
    });
  });
}

// Redis database 1, of this suite's own: it is flushed below, and the other
// suites that use TEST_REDIS_URL count in database 0 at the same time.
const redisUrl = process.env.TEST_REDIS_URL && Object.assign(new URL(process.env.TEST_REDIS_URL), { pathname: "/1" }).href;
// Without Redis the suite says so and skips; under CI a missing Redis is a failure.
const redisMissing = redisUrl ? false : "TEST_REDIS_URL is not set: the shared-counter suite needs a Redis (see README, Testing)";
if (redisMissing && process.env.CI === "true") t.fail(redisMissing);
t.test("shared counters through Redis", { skip: redisMissing }, async (t) => {
  const cluster = await startCluster(t, "sqlite", 2, { REDIS_URL: redisUrl!, TOKEN_RATE_LIMIT_PER_IP: "4", SIGNIN_MAX_FAILURES_PER_IP: "1000" });
  const [a, b] = cluster.instances as [Cluster["instances"][0], Cluster["instances"][0]];
  // Keys of an earlier run must not count: flush this suite's database.
  await a.app.context.redis!.flushdb();

  await t.test("the fifth token request in a minute from one address is refused, whichever instance gets it", async (t) => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${(i % 2 ? b : a).url}/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "grant_type=client_credentials" });
      statuses.push(res.status);
      await res.text();
    }
    t.same(statuses.slice(0, 4).map((s) => s === 429), [false, false, false, false], `four answered (${statuses.join(",")})`);
    t.equal(statuses[4], 429, "the fifth is rate limited, though each instance saw fewer than five");
  });

  await t.test("failed sign-ins count across instances: the sixth is refused with 429", async (t) => {
    const password = strongPassword();
    const user = await createUser(a.db, cluster.config.argon2, { email: uniqueEmail("locked"), password });
    const client = await clientOf(cluster, "Lockout app", "openid email");
    const browser = new Browser(cluster.url);
    const pending = await authorizationUrl(client);
    const page = last(await browser.follow(pending.url));
    const statuses: number[] = [];
    const before = cluster.served.length;
    for (let i = 0; i < 6; i++) {
      const res = last(await browser.submit(page, { email: user.email, password: "wrong-password-" + i }));
      statuses.push(res.status);
    }
    const served = cluster.served.slice(before);
    t.ok(served.includes(0) && served.includes(1), `both instances answered attempts (${served.join(",")})`);
    t.same(statuses, [401, 401, 401, 401, 401, 429]);
  });
});
