/**
 * The device authorization grant (RFC 8628) over HTTP, without a browser:
 * a CLI-like public client starts the flow at /device/auth and polls the
 * token endpoint with openid-client; a browser-like HTTP client enters the
 * code at /device, signs in and confirms on the page naming the client.
 * Runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set.
 */
import t from "tap";
import * as oidc from "openid-client";
import { createClient, deviceCodeGrantType } from "../../src/services/clients.ts";
import { providers } from "../helpers/databases.ts";
import { adminCall, makeAdminClient } from "../helpers/admin.ts";
import { Browser, csrfToken, errorParagraph, last, makeUser, redirectUri, startApp, type Response, type RunningApp } from "../helpers/http-flow.ts";

/** A public client registered for the device grant, as `gatehouse clients create --public --grant-types ...` makes it. */
async function makeDeviceClient(running: RunningApp, name = "Acme CLI", grantTypes = [deviceCodeGrantType, "refresh_token"]) {
  const created = await createClient(running.db, running.ring, { name, public: true, grantTypes, scope: "openid profile email offline_access" });
  const config = await oidc.discovery(new URL(running.url), created.client_id, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  return { clientId: created.client_id, config };
}

/** The xsrf secret of the device page's form. */
function xsrfOf(page: Response): string {
  const match = /name="xsrf" value="([^"]+)"/.exec(page.body);
  if (!match) throw new Error(`no xsrf in the page: ${page.body.slice(0, 500)}`);
  return match[1]!;
}

/** Opens /device, submits `code`; returns the chain of responses (following redirects within the issuer). */
async function enterCode(browser: Browser, code: string): Promise<Response[]> {
  const page = await browser.request("/device");
  return browser.follow("/device", { form: { xsrf: xsrfOf(page), user_code: code, confirm: "yes" } });
}

const wrongCode = "That code is not valid or has expired. Check the code on your device and try again.";

async function startDevice(client: { config: oidc.Configuration }, scope = "openid email offline_access") {
  return oidc.initiateDeviceAuthorization(client.config, { scope });
}

for (const provider of providers(t)) {
  t.test(`${provider}: device flow over HTTP`, async (t) => {
    const running = await startApp(t, { provider });
    const user = await makeUser(running, { name: "Dee Vice" });

    t.test("discovery advertises the device authorization endpoint and grant type", async (t) => {
      const meta = (await (await fetch(`${running.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      t.equal(meta.device_authorization_endpoint, `${running.url}/device/auth`);
      t.ok((meta.grant_types_supported as string[]).includes(deviceCodeGrantType));
    });

    t.test("Allow: the polling client receives tokens for the user", async (t) => {
      const client = await makeDeviceClient(running);
      const response = await startDevice(client);
      t.match(response.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/, "base-20, two groups of four (RFC 8628 section 6.1)");
      t.equal(response.verification_uri, `${running.url}/device`);

      const pending = await fetch(`${running.url}/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: deviceCodeGrantType, device_code: response.device_code, client_id: client.clientId }),
      });
      t.equal(pending.status, 400);
      t.equal(((await pending.json()) as { error: string }).error, "authorization_pending", "before the user confirms");

      const browser = new Browser(running.url);
      let page = last(await enterCode(browser, response.user_code.toLowerCase().replace("-", " ")));
      t.match(page.body, /id="sign-in-form"/, "a right code (any case, any separator) leads to the sign-in page");
      page = last(await browser.submit(page, { email: user.email, password: user.password }));
      t.match(page.body, /Allow access on a device/, "then the confirmation");
      t.match(page.body, /Acme CLI/, "naming the client");
      t.match(page.body, new RegExp(response.user_code), "and the code");
      page = last(await browser.submit(page, { decision: "allow" }));
      t.equal(page.status, 200);
      t.match(page.body, /Device connected/);

      const tokens = await oidc.pollDeviceAuthorizationGrant(client.config, { ...response, interval: 0 } as typeof response);
      t.equal(tokens.claims()?.sub, user.id, "the ID token names the user");
      t.ok(tokens.refresh_token, "offline_access gives a refresh token");
      const userinfo = await oidc.fetchUserInfo(client.config, tokens.access_token, user.id);
      t.equal(userinfo.email, user.email, "the access token works at userinfo");

      const reused = await fetch(`${running.url}/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: deviceCodeGrantType, device_code: response.device_code, client_id: client.clientId }),
      });
      t.equal(((await reused.json()) as { error: string }).error, "invalid_grant", "a device code gives tokens once");

      const again = last(await enterCode(browser, response.user_code));
      t.equal(errorParagraph(again.body), wrongCode, "a used code is refused with the same message as a wrong one");
    });

    t.test("Deny: the polling client gets access_denied", async (t) => {
      const client = await makeDeviceClient(running, "Deny CLI");
      const response = await startDevice(client);
      const browser = new Browser(running.url);
      let page = last(await enterCode(browser, response.user_code));
      page = last(await browser.submit(page, { email: user.email, password: user.password }));
      t.match(page.body, /Deny CLI/);
      page = last(await browser.submit(page, { decision: "deny" }));
      t.match(page.body, /Access denied/);
      const error = await oidc.pollDeviceAuthorizationGrant(client.config, { ...response, interval: 0 } as typeof response).catch((e: unknown) => e);
      t.equal((error as { error?: string }).error, "access_denied");
    });

    t.test("a first-party client's device sign-in is confirmed too, and a signed-in user still confirms", async (t) => {
      const created = await createClient(running.db, running.ring, { name: "Own TV app", public: true, grantTypes: [deviceCodeGrantType], firstParty: true });
      const config = await oidc.discovery(new URL(running.url), created.client_id, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const browser = new Browser(running.url);
      for (const round of [1, 2]) {
        const response = await oidc.initiateDeviceAuthorization(config, { scope: "openid" });
        let page = last(await enterCode(browser, response.user_code));
        if (round === 1) page = last(await browser.submit(page, { email: user.email, password: user.password }));
        else t.notMatch(page.body, /id="sign-in-form"/, "the second time the session is reused");
        t.match(page.body, /Allow access on a device/, `round ${round}: the confirmation`);
        page = last(await browser.submit(page, { decision: "allow" }));
        const tokens = await oidc.pollDeviceAuthorizationGrant(config, { ...response, interval: 0 } as typeof response);
        t.equal(tokens.claims()?.sub, user.id);
      }
    });

    t.test("verification_uri_complete shows the code to compare, and Cancel denies", async (t) => {
      const client = await makeDeviceClient(running, "Link CLI");
      const response = await startDevice(client);
      const browser = new Browser(running.url);
      // oidc-provider answers with a self-submitting form (form_post) carrying the code; submit it as a browser would.
      const autoPost = await browser.request(response.verification_uri_complete!);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(autoPost.body)?.[1];
      t.ok(xsrf, "the form carries the xsrf secret");
      const check = last(await browser.follow("/device", { form: { xsrf: xsrf!, user_code: response.user_code } }));
      t.match(check.body, /Check the code/);
      t.match(check.body, new RegExp(response.user_code));
      t.match(check.body, /Link CLI/);
      const cancelled = last(await browser.follow("/device", { form: { xsrf: xsrfOf(check), user_code: response.user_code, abort: "yes" } }));
      t.match(cancelled.body, /Access denied/);
      const error = await oidc.pollDeviceAuthorizationGrant(client.config, { ...response, interval: 0 } as typeof response).catch((e: unknown) => e);
      t.equal((error as { error?: string }).error, "access_denied");
    });

    t.test("the admin API registers a public device client; refresh_token needs a grant that signs a user in", async (t) => {
      const admin = await makeAdminClient(running, "admin:write");
      const created = await adminCall(running, "POST", "/admin/v1/clients", {
        token: admin.token,
        body: { client_name: "Admin-made CLI", token_endpoint_auth_method: "none", grant_types: [deviceCodeGrantType, "refresh_token"] },
      });
      t.equal(created.status, 201, created.text);
      t.notOk(created.json.client_secret, "no secret for a public client");
      const config = await oidc.discovery(new URL(running.url), created.json.client_id, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
      const response = await oidc.initiateDeviceAuthorization(config, { scope: "openid offline_access" });
      t.match(response.user_code, /^\w{4}-\w{4}$/, "it can start a device flow");
      const refused = await adminCall(running, "POST", "/admin/v1/clients", {
        token: admin.token,
        body: { client_name: "Refresh only", token_endpoint_auth_method: "none", grant_types: ["refresh_token"] },
      });
      t.equal(refused.status, 400);
      t.match(refused.json.error_description, /refresh_token needs the authorization_code or device_code grant/);
    });

    t.test("an expired device code: expired_token when polled, the generic message at /device", async (t) => {
      const client = await makeDeviceClient(running, "Slow CLI");
      const response = await startDevice(client);
      // Ages the code as time would, by its lifetime and 5 seconds: its payload's
      // exp (which oidc-provider checks) and its row's expiresAt alike.
      const row = await running.db.prisma.oidcRecord.findFirstOrThrow({ where: { model: "DeviceCode", clientId: client.clientId } });
      const payload = JSON.parse(row.payload) as { exp: number };
      const age = payload.exp - Math.floor(Date.now() / 1000) + 5;
      payload.exp -= age;
      await running.db.prisma.oidcRecord.update({
        where: { model_id: { model: row.model, id: row.id } },
        data: { payload: JSON.stringify(payload), expiresAt: new Date(row.expiresAt!.getTime() - age * 1000) },
      });
      const polled = await fetch(`${running.url}/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: deviceCodeGrantType, device_code: response.device_code, client_id: client.clientId }),
      });
      t.equal(polled.status, 400);
      t.equal(((await polled.json()) as { error: string }).error, "expired_token", "RFC 8628 section 3.5");
      const page = last(await enterCode(new Browser(running.url), response.user_code));
      t.equal(errorParagraph(page.body), wrongCode, "the same message as a wrong code");
    });

    t.test("a client without the device grant type is refused at /device/auth", async (t) => {
      const created = await createClient(running.db, running.ring, { name: "Web app", public: true, redirectUris: [redirectUri] });
      const res = await fetch(`${running.url}/device/auth`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ client_id: created.client_id, scope: "openid" }),
      });
      t.equal(res.status, 400);
      const body = (await res.json()) as { error: string; error_description: string };
      t.equal(body.error, "unauthorized_client", body.error_description);
    });

    t.test("wrong codes are answered in place with one message; a form without its secret is refused", async (t) => {
      const browser = new Browser(running.url);
      const page = last(await enterCode(browser, "BCDF-GHJK"));
      t.equal(page.status, 200);
      t.equal(errorParagraph(page.body), wrongCode);
      t.match(page.body, /<label for="user_code">Code<\/label>/, "the form again");
      t.match(page.headers.get("content-security-policy"), /^default-src 'none'.*frame-ancestors 'none'/, "the provider's page headers");
      t.equal(page.headers.get("cache-control"), "no-store", "the form carries a secret: not cached");
      const forged = await browser.request("/device", { form: { user_code: "BCDF-GHJK", confirm: "yes" } });
      t.equal(forged.status, 403, "no xsrf: 403");
    });
  });
}

t.test("10 wrong codes from one address, then 429 with Retry-After; a right code does not reset the count", async (t) => {
  // loopback is a trusted proxy, so X-Forwarded-For sets the client address.
  const running = await startApp(t, { env: { TRUST_PROXY: "loopback" } });
  const client = await makeDeviceClient(running);
  const from = (ip: string) => new Browser(running.url, { "x-forwarded-for": ip });
  const attacker = from("2001:db8:7:7::1");
  let page = await attacker.request("/device");
  for (let i = 1; i <= 9; i++) {
    page = last(await attacker.follow("/device", { form: { xsrf: xsrfOf(page), user_code: "ZZZZ-ZZZZ", confirm: "yes" } }));
    t.equal(errorParagraph(page.body), wrongCode, `wrong code ${i}`);
  }
  // The attacker's own device flow's right code, entered from the same /64, gives back its own unit only.
  const own = await startDevice(client);
  const right = last(await enterCode(from("2001:db8:7:7::2"), own.user_code));
  t.match(right.body, /id="sign-in-form"/, "a right code is not a failure");
  page = last(await attacker.follow("/device", { form: { xsrf: xsrfOf(page), user_code: "ZZZZ-ZZZX", confirm: "yes" } }));
  t.equal(errorParagraph(page.body), wrongCode, "wrong code 10");
  const refused = await attacker.request("/device", { form: { xsrf: xsrfOf(page), user_code: "ZZZZ-ZZZZ", confirm: "yes" } });
  t.equal(refused.status, 429, "the 11th attempt is refused");
  t.ok(Number(refused.headers.get("retry-after")) > 0, "with Retry-After");
  t.match(refused.body, /Too many wrong codes/, "an HTML page says why");
  t.match(refused.headers.get("content-security-policy"), /frame-ancestors 'none'/, "with our pages' headers");
  t.equal(refused.headers.get("cache-control"), "no-store");
  const victim = await startDevice(client);
  const stillRefused = await from("2001:db8:7:7:ffff::9").request("/device", { form: { xsrf: "x", user_code: victim.user_code, confirm: "yes" } });
  t.equal(stillRefused.status, 429, "even a right code, from anywhere in the same /64");
  const other = last(await enterCode(from("198.51.100.7"), victim.user_code));
  t.match(other.body, /id="sign-in-form"/, "another address is not affected");
});

t.test("parallel wrong codes: no more than 10 are ever checked", async (t) => {
  const running = await startApp(t, { env: { TRUST_PROXY: "loopback" } });
  const attacker = new Browser(running.url, { "x-forwarded-for": "203.0.113.9" });
  const page = await attacker.request("/device");
  const xsrf = xsrfOf(page);
  const statuses = await Promise.all(
    Array.from({ length: 25 }, (_, i) => attacker.request("/device", { form: { xsrf, user_code: `ZZZZ-${String(i).padStart(4, "0")}`, confirm: "yes" } }).then((r) => r.status)),
  );
  t.equal(statuses.filter((s) => s === 429).length, 15, "15 of 25 refused before any lookup");
});

t.test("/device/auth and /device are rate limited per address", async (t) => {
  const running = await startApp(t, { env: { TRUST_PROXY: "loopback", AUTH_RATE_LIMIT_PER_IP: "3" } });
  const client = await makeDeviceClient(running);
  const post = (ip: string) =>
    fetch(`${running.url}/device/auth`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-forwarded-for": ip },
      body: new URLSearchParams({ client_id: client.clientId, scope: "openid" }),
    }).then((r) => r.status);
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push(await post("2001:db8:9:9::1"));
  t.same(statuses, [200, 200, 200, 429]);
  t.equal(await post("2001:db8:9:9::abcd"), 429, "the same /64");
  t.equal(await post("2001:db8:9:a::1"), 200, "another /64");
  const page = new Browser(running.url, { "x-forwarded-for": "192.0.2.44" });
  const pages = [];
  for (let i = 0; i < 4; i++) pages.push((await page.request("/device")).status);
  t.same(pages, [200, 200, 200, 429], "each visit writes a session: limited like /auth");
});

const redisUrl = process.env.TEST_REDIS_URL;
// Without Redis the test says so and skips; under CI a missing Redis is a failure.
const redisMissing = redisUrl ? false : "TEST_REDIS_URL is not set: the shared-counter test needs a Redis (see README, Testing)";
if (redisMissing && process.env.CI === "true") t.fail(redisMissing);
t.test("with REDIS_URL two instances share the wrong-code count", { skip: redisMissing }, async (t) => {
  const env = { TRUST_PROXY: "loopback", REDIS_URL: redisUrl! };
  const one = await startApp(t, { env });
  // The second instance on its own database: only the counters are shared.
  const two = await startApp(t, { env });
  // An address of this run's own: other suites count in the same Redis.
  const ip = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:${Math.floor(Math.random() * 0xffff).toString(16)}::1`;
  for (let i = 1; i <= 10; i++) {
    const page = last(await enterCode(new Browser(i % 2 ? one.url : two.url, { "x-forwarded-for": ip }), "ZZZZ-ZZZZ"));
    t.equal(errorParagraph(page.body), wrongCode, `wrong code ${i}, on instance ${i % 2 ? 1 : 2}`);
  }
  for (const running of [one, two]) {
    const browser = new Browser(running.url, { "x-forwarded-for": ip });
    const page = await browser.request("/device");
    const refused = await browser.request("/device", { form: { xsrf: xsrfOf(page), user_code: "ZZZZ-ZZZZ", confirm: "yes" } });
    t.equal(refused.status, 429, `refused on ${running === one ? "the first" : "the second"} instance`);
  }
});
