/**
 * A bounded load during rotations: client_credentials and refresh token
 * requests against two instances behind a balancer for about 15 seconds
 * while the keys rotate three times (next key published KEY_PUBLISH_AHEAD =
 * 2 s before the lifecycle job makes it current; instances poll every
 * second). No request may fail, and every JWT issued (ID tokens of RS256,
 * ES256 and EdDSA clients; signed introspection responses, RFC 9701) must
 * verify against the JWKS fetched, through the balancer, right after it was
 * issued: a relying party never sees a kid it could not have fetched.
 */
import t from "tap";
import { createUser } from "../../src/services/users.ts";
import { createClient } from "../../src/services/clients.ts";
import { rotateSigningKeys } from "../../src/services/signing-keys.ts";
import { cliOperator } from "../../src/services/actor.ts";
import { providers } from "../helpers/databases.ts";
import { startCluster } from "../helpers/cluster.ts";
import { strongPassword, uniqueEmail } from "../helpers/http-flow.ts";
import { fetchJwks, kidOf, makeTokenHolders, refresh, verifiesWith, type TokenHolder } from "../helpers/signing-keys.ts";

const seconds = 15;
/** Stop early past this many token requests, whatever the time. */
const maxRequests = 1500;
/** Each worker's pause between iterations: a steady load of a few dozen requests a second. */
const pauseMs = 100;
const pause = () => new Promise((resolve) => setTimeout(resolve, pauseMs));
const rotations = [2, 6, 10];

for (const provider of providers(t)) {
  t.test(`no failed request and every JWT verifies while keys rotate three times, ${provider}`, async (t) => {
    const cluster = await startCluster(t, provider, 2, {
      KEYS_POLL_INTERVAL: "1",
      KEY_PUBLISH_AHEAD: "2",
      TOKEN_RATE_LIMIT_PER_IP: "1000000",
      TOKEN_RATE_LIMIT_PER_CLIENT: "1000000",
    });
    const db = cluster.instances[0]!.db;
    const password = strongPassword();
    const user = await createUser(db, cluster.config.argon2, { email: uniqueEmail("load"), password });
    const holders = await makeTokenHolders(db, cluster.ring, cluster.url, { id: user.id, email: user.email, password });
    const service = await createClient(db, cluster.ring, { name: "Load service", grantTypes: ["client_credentials"], scope: "admin:read", redirectUris: [] });
    const basic = `Basic ${Buffer.from(`${service.client_id}:${service.client_secret}`).toString("base64")}`;

    const failures: string[] = [];
    const unverified: string[] = [];
    const kidsSeen = new Map<string, Set<string>>();
    let requests = 0;
    let jwts = 0;
    const deadline = Date.now() + seconds * 1000;
    const going = () => Date.now() < deadline && requests < maxRequests;

    /** Checks a JWT the way a relying party would, against the JWKS fetched now. */
    const check = async (label: string, jwt: string) => {
      jwts += 1;
      const alg = label.split(" ")[0]!;
      if (!kidsSeen.has(alg)) kidsSeen.set(alg, new Set());
      kidsSeen.get(alg)!.add(kidOf(jwt));
      if (!(await verifiesWith(jwt, await fetchJwks(cluster.url), cluster.url))) unverified.push(`${label} kid ${kidOf(jwt)}`);
    };

    const refreshLoop = async (holder: TokenHolder) => {
      while (going()) {
        requests += 1;
        const answer = await refresh(cluster.url, holder);
        if (answer.status !== 200 || typeof answer.json.id_token !== "string") {
          failures.push(`refresh ${holder.alg}: ${answer.status} ${JSON.stringify(answer.json)}`);
          return;
        }
        await check(`${holder.alg} id_token`, answer.json.id_token);
        await pause();
      }
    };

    const clientCredentialsLoop = async () => {
      while (going()) {
        requests += 1;
        const res = await fetch(`${cluster.url}/token`, {
          method: "POST",
          headers: { authorization: basic, "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ grant_type: "client_credentials", scope: "admin:read" }),
        });
        const json = (await res.json()) as { access_token?: string };
        if (res.status !== 200 || !json.access_token) {
          failures.push(`client_credentials: ${res.status} ${JSON.stringify(json)}`);
          continue;
        }
        requests += 1;
        // The token's introspection as a signed JWT (RFC 9701), RS256 by default.
        const introspection = await fetch(`${cluster.url}/token/introspection`, {
          method: "POST",
          headers: { authorization: basic, "content-type": "application/x-www-form-urlencoded", accept: "application/token-introspection+jwt" },
          body: new URLSearchParams({ token: json.access_token }),
        });
        const body = await introspection.text();
        if (introspection.status !== 200 || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(body)) {
          failures.push(`introspection: ${introspection.status} ${body.slice(0, 200)}`);
          continue;
        }
        await check("RS256 introspection", body);
        await pause();
      }
    };

    const rotate = async () => {
      const start = Date.now();
      for (const at of rotations) {
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, start + at * 1000 - Date.now())));
        await rotateSigningKeys(db, cluster.ring, { immediately: false }, cliOperator);
      }
    };

    const startedKids = await db.prisma.signingKey.findMany({ where: { state: "current" } });
    const loadStarted = Date.now();
    await Promise.all([rotate(), ...holders.map(refreshLoop), clientCredentialsLoop(), clientCredentialsLoop()]);
    // Let the last rotation's keys become current, then check that they sign too.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    for (const holder of holders) {
      const answer = await refresh(cluster.url, holder);
      if (answer.status !== 200) failures.push(`final refresh ${holder.alg}: ${answer.status}`);
      else await check(`${holder.alg} id_token`, answer.json.id_token as string);
    }

    t.comment(`${requests} token and introspection requests, ${jwts} JWTs checked, kids per alg: ${[...kidsSeen].map(([alg, kids]) => `${alg} ${kids.size}`).join(", ")}`);
    t.ok(requests >= 300, `a real load (${requests} requests)`);
    t.ok(Date.now() - loadStarted >= seconds * 1000, "the load went on through the three rotations");
    t.same(failures, [], "no request failed");
    t.same(unverified, [], "every JWT verified against the JWKS fetched right after it was issued");
    const activated = await db.prisma.auditEvent.count({ where: { type: "signing_key.activated" } });
    t.equal(activated, 9, "three rotations: three keys made current by the lifecycle job for each algorithm");
    const current = await db.prisma.signingKey.findMany({ where: { state: "current" } });
    t.notOk(current.some((k) => startedKids.some((s) => s.kid === k.kid)), "the keys in service at the start are retired");
    for (const alg of ["RS256", "ES256", "EdDSA"]) {
      t.equal(kidsSeen.get(alg)?.size, 4, `${alg} tokens were signed by the first key and each rotation's key in turn`);
    }
  });
}
