/**
 * Attack: every authorization request (GET or POST /auth) writes an
 * Interaction row that lives an hour, and every pushed authorization request
 * (POST /request, RFC 9126) writes a row too, with nothing but a client_id
 * (or one client's credentials) needed. A loop fills the database. Both
 * endpoints are rate limited per client address, an IPv6 address counted
 * per /64 (one subscriber's allocation, RFC 6177), and a refused request
 * writes nothing.
 */
import t from "tap";
import * as oidc from "openid-client";
import { ipRateLimitKey } from "../../src/plugins/rate-limit.ts";
import { createClient } from "../../src/services/clients.ts";
import { Browser, authorizationUrl, buildTestApp, csrfToken, last, makeClient, redirectUri, startApp } from "../helpers/http-flow.ts";

t.test("ipRateLimitKey: IPv4 as is, IPv6 per /64, IPv4-mapped IPv6 as IPv4", async (t) => {
  t.equal(ipRateLimitKey("1.2.3.4"), "1.2.3.4");
  t.equal(ipRateLimitKey("2001:db8:1:2::1"), ipRateLimitKey("2001:db8:1:2:ffff:ffff:ffff:ffff"), "one /64, one key");
  t.equal(ipRateLimitKey("2001:DB8:1:2::1"), ipRateLimitKey("2001:db8:1:2:0:0:0:7"), "whatever the spelling");
  t.not(ipRateLimitKey("2001:db8:1:2::1"), ipRateLimitKey("2001:db8:1:3::1"), "the next /64 is another key");
  t.equal(ipRateLimitKey("::ffff:1.2.3.4"), ipRateLimitKey("1.2.3.4"), "IPv4-mapped IPv6 is the IPv4 address");
  t.not(ipRateLimitKey("1.2.3.4"), ipRateLimitKey("1.2.3.5"));
});

async function authorizationQuery(clientId: string) {
  return new URLSearchParams({
    client_id: clientId,
    redirect_uri: redirectUri,
    response_type: "code",
    scope: "openid",
    state: oidc.randomState(),
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: "S256",
  }).toString();
}

t.test("/auth and /request per client address", async (t) => {
  // loopback: app.inject() comes from 127.0.0.1, a trusted proxy, so X-Forwarded-For sets the address.
  const { app, db, ring } = await buildTestApp(t, { env: { TRUST_PROXY: "loopback", AUTH_RATE_LIMIT_PER_IP: "3" } });
  const client = await createClient(db, ring, { name: "Any app", redirectUris: [redirectUri], scope: "openid" });
  const rows = (model: string) => db.prisma.oidcRecord.count({ where: { model } });
  const from = (ip: string) => ({ "x-forwarded-for": ip });
  const getAuth = async (ip: string) => app.inject({ method: "GET", url: `/auth?${await authorizationQuery(client.client_id)}`, headers: from(ip) });
  const postAuth = async (ip: string) =>
    app.inject({ method: "POST", url: "/auth", headers: { ...from(ip), "content-type": "application/x-www-form-urlencoded" }, payload: await authorizationQuery(client.client_id) });
  const par = async (ip: string) =>
    app.inject({
      method: "POST",
      url: "/request",
      headers: {
        ...from(ip),
        authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString("base64")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      payload: await authorizationQuery(client.client_id),
    });

  await t.test("the fourth /auth from one /64 gets 429 with Retry-After and writes no Interaction row", async (t) => {
    for (const ip of ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:abcd::3"]) {
      const res = await getAuth(ip);
      t.equal(res.statusCode, 303, `${ip}: the authorization request starts an interaction`);
    }
    const before = await rows("Interaction");
    const refused = await getAuth("2001:db8:1:2:ffff:ffff:ffff:fffe");
    t.equal(refused.statusCode, 429, "another address in the same /64 shares the counter: 429");
    t.match(refused.headers["retry-after"], /^\d+$/, "with Retry-After");
    t.equal(await rows("Interaction"), before, "no Interaction row was written");
    t.equal(refused.json().error, "too_many_requests", "a JSON error");
    t.equal((await getAuth("2001:db8:1:3::1")).statusCode, 303, "the next /64 has its own budget");
    t.equal((await getAuth("198.51.100.7")).statusCode, 303, "and so has an IPv4 address");
  });

  await t.test("POST /auth counts too (oidc-provider serves it only with enableHttpPostMethods)", async (t) => {
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await postAuth("198.51.100.8")).statusCode);
    t.same(statuses.map((s) => s === 429), [false, false, false, true], `the fourth is refused (${statuses.join(",")})`);
  });

  await t.test("the fourth pushed authorization request from one address gets 429 and writes no row", async (t) => {
    for (let i = 0; i < 3; i++) t.equal((await par("203.0.113.9")).statusCode, 201, `PAR ${i + 1}: 201`);
    const before = await rows("PushedAuthorizationRequest");
    const refused = await par("203.0.113.9");
    t.equal(refused.statusCode, 429);
    t.match(refused.headers["retry-after"], /^\d+$/);
    t.equal(await rows("PushedAuthorizationRequest"), before, "no row was written");
  });
});

t.test("AUTH_RATE_LIMIT_PER_IP is validated and defaults to 300", async (t) => {
  const { loadConfig } = await import("../../src/config.ts");
  t.equal(loadConfig({}).authRateLimitPerIp, 300);
  t.equal(loadConfig({ AUTH_RATE_LIMIT_PER_IP: "20" }).authRateLimitPerIp, 20);
  t.throws(() => loadConfig({ AUTH_RATE_LIMIT_PER_IP: "0" }), { name: "ConfigError", variable: "AUTH_RATE_LIMIT_PER_IP" });
  t.throws(() => loadConfig({ AUTH_RATE_LIMIT_PER_IP: "lots" }), { name: "ConfigError", variable: "AUTH_RATE_LIMIT_PER_IP" });
});

t.test("passkey sign-in options (each writes a challenge row) are limited per client address", async (t) => {
  const running = await startApp(t, { env: { AUTH_RATE_LIMIT_PER_IP: "3" } });
  const client = await makeClient(running, { name: "Passkey limit app" });
  const browser = new Browser(running.url);
  const page = last(await browser.follow((await authorizationUrl(client)).url));
  const options = () => browser.request(`${page.url.pathname}/passkey/options`, { json: {}, headers: { "x-csrf-token": csrfToken(page.body) } });
  for (let i = 0; i < 3; i++) t.equal((await options()).status, 200, `options ${i + 1}: 200`);
  const before = await running.db.prisma.webAuthnChallenge.count();
  const refused = await options();
  t.equal(refused.status, 429, "the fourth from one address: 429");
  t.match(refused.headers.get("retry-after"), /^\d+$/, "with Retry-After");
  t.equal(await running.db.prisma.webAuthnChallenge.count(), before, "and no challenge row was written");
});
