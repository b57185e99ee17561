/**
 * Attack: the per-client limit on the token, introspection and revocation
 * endpoints was keyed on the client_id of the Authorization header before
 * anyone checked the secret. Sending a victim client's id with a wrong secret,
 * from as many addresses as it takes to stay under the per-IP limit, used up
 * the victim's budget: its own requests were refused (denial of service).
 * Only requests whose client authentication succeeded count against the
 * client; failed authentication counts against the address only.
 */
import t from "tap";
import { createClient } from "../../src/services/clients.ts";
import { startApp, type RunningApp } from "../helpers/http-flow.ts";

const perClient = 3;

function basic(clientId: string, secret: string) {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString("base64")}`;
}

async function post(running: RunningApp, path: string, from: string, authorization: string, form: Record<string, string>) {
  const res = await fetch(`${running.url}${path}`, {
    method: "POST",
    headers: { authorization, "x-forwarded-for": from, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
  });
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  return { status: res.status, retryAfter: res.headers.get("retry-after"), json };
}

t.test("the per-client budget counts authenticated requests only", async (t) => {
  // loopback: requests come from 127.0.0.1, a trusted proxy, so X-Forwarded-For sets each attacker's address.
  const running = await startApp(t, { env: { TRUST_PROXY: "loopback", TOKEN_RATE_LIMIT_PER_CLIENT: String(perClient), TOKEN_RATE_LIMIT_PER_IP: "1000" } });
  const make = async (name: string) => {
    const created = await createClient(running.db, running.ring, { name, grantTypes: ["client_credentials"], scope: "admin:read" });
    return { id: created.client_id, secret: created.client_secret! };
  };
  const victim = await make("Victim service");
  const grant = { grant_type: "client_credentials", scope: "admin:read" };

  await t.test("2x the budget of wrong-secret requests for the victim, from other addresses, then the victim's own request: 200", async (t) => {
    for (let i = 0; i < 2 * perClient; i++) {
      const path = ["/token", "/token/introspection", "/token/revocation"][i % 3]!;
      const form = path === "/token" ? grant : { token: "whatever" };
      const res = await post(running, path, `203.0.113.${i + 1}`, basic(victim.id, "wrong-secret"), form);
      t.equal(res.status, 401, `attempt ${i + 1} on ${path}: invalid_client`);
    }
    const own = await post(running, "/token", "198.51.100.1", basic(victim.id, victim.secret), grant);
    t.equal(own.status, 200, `the victim still gets its token (${JSON.stringify(own.json)})`);
  });

  await t.test("a client's own authenticated requests still use up its budget, whatever the address", async (t) => {
    const busy = await make("Busy service");
    const statuses: number[] = [];
    for (let i = 0; i < perClient + 1; i++) statuses.push((await post(running, "/token", `198.51.100.${20 + i}`, basic(busy.id, busy.secret), grant)).status);
    t.same(statuses, [200, 200, 200, 429], "the fourth in the minute is refused");
    const refused = await post(running, "/token", "198.51.100.40", basic(busy.id, busy.secret), grant);
    t.equal(refused.status, 429);
    t.match(refused.retryAfter, /^\d+$/, "with Retry-After");
    t.equal(refused.json.error, "too_many_requests");
    const token = (await post(running, "/token", "198.51.100.1", basic(victim.id, victim.secret), grant)).status;
    t.equal(token, 200, "other clients are unaffected");
  });

  await t.test("an authenticated request that fails later (bad grant) counts: the client did authenticate", async (t) => {
    const sloppy = await make("Sloppy service");
    const statuses: number[] = [];
    for (let i = 0; i < perClient; i++) {
      statuses.push((await post(running, "/token", `198.51.100.${60 + i}`, basic(sloppy.id, sloppy.secret), { grant_type: "client_credentials", scope: "admin:write" })).status);
    }
    t.same(statuses, [400, 400, 400], "invalid_scope, after authentication");
    t.equal((await post(running, "/token", "198.51.100.70", basic(sloppy.id, sloppy.secret), grant)).status, 429, "the budget is spent");
  });

  await t.test("wrong secrets still count against the attacker's address", async (t) => {
    const strict = await startApp(t, { env: { TRUST_PROXY: "loopback", TOKEN_RATE_LIMIT_PER_IP: "3" } });
    const target = await createClient(strict.db, strict.ring, { name: "Target", grantTypes: ["client_credentials"], scope: "admin:read" });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await post(strict, "/token", "203.0.113.200", basic(target.client_id, "wrong"), grant)).status);
    t.same(statuses, [401, 401, 401, 429]);
    t.equal((await post(strict, "/token", "198.51.100.1", basic(target.client_id, target.client_secret!), grant)).status, 200, "the client, from its own address, is unaffected");
  });
});
