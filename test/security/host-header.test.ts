/**
 * Attack: the Host header (and X-Forwarded-Host, when a proxy is trusted) is
 * the client's to choose. If it reaches the URLs Gatehouse builds, a request
 * with `Host: evil.example` gets a discovery document whose jwks_uri and
 * token_endpoint point at the attacker (cache poisoning at a shared cache or
 * proxy), and sign-in redirects that leave the issuer. The issuer is fixed:
 * discovery, redirects and pages name only ISSUER's URLs, whatever the
 * request says, with or without TRUST_PROXY.
 */
import t, { type Test } from "tap";
import { request as httpRequest } from "node:http";
import { CookieJar, csrfToken, makeClient, makeUser, authorizationUrl, redirectUri, startApp, type RunningApp } from "../helpers/http-flow.ts";

const evil = { host: "evil.example", "x-forwarded-host": "evil.example", "x-forwarded-proto": "http" };

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP/1.1 request with exactly the headers given (fetch does not let a caller set Host). */
function raw(running: RunningApp, method: string, path: string, headers: Record<string, string>, body?: string): Promise<RawResponse> {
  const { port } = new URL(running.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method, path, headers: { ...headers, ...(body ? { "content-length": String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Every string in a JSON value. */
function strings(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value && typeof value === "object") return Object.values(value).flatMap(strings);
  return [];
}

/** A Location is fine when it is relative to the issuer or on the issuer (or the client's redirect_uri). */
function expectLocationOnIssuer(t: Test, running: RunningApp, location: string | string[] | undefined, label: string) {
  t.type(location, "string", `${label}: a Location`);
  const target = new URL(String(location), running.url);
  t.ok(String(location).startsWith("/") || target.origin === new URL(running.url).origin || target.href.startsWith(`${redirectUri}?`), `${label}: ${String(location)} is on the issuer`);
  t.notMatch(String(location), /evil\.example/, `${label}: never on the Host header's host`);
}

async function hostSuite(t: Test, env: Record<string, string>) {
  const running = await startApp(t, { env: { SIGNIN_MAX_FAILURES_PER_IP: "1000", ...env } });
  const origin = new URL(running.url).origin;

  await t.test("discovery names only the issuer's URLs", async (t) => {
    for (const headers of [evil, { ...evil, "x-forwarded-proto": "https" }, { host: "evil.example" }]) {
      const res = await raw(running, "GET", "/.well-known/openid-configuration", headers);
      t.equal(res.status, 200);
      const urls = strings(JSON.parse(res.body)).filter((s) => /^https?:/.test(s));
      t.ok(urls.length > 5, "it lists endpoints");
      for (const url of urls) t.equal(new URL(url).origin, origin, `${url} is on ${origin}`);
    }
  });

  await t.test("discovery through app.inject (no socket) too", async (t) => {
    const res = await running.app.inject({ method: "GET", url: "/.well-known/openid-configuration", headers: evil });
    for (const url of strings(res.json()).filter((s) => /^https?:/.test(s))) t.equal(new URL(url).origin, origin, url);
  });

  await t.test("a sign-in whose every request says Host: evil.example redirects only within the issuer", async (t) => {
    const client = await makeClient(running, { firstParty: true });
    const user = await makeUser(running);
    const pending = await authorizationUrl(client);
    const jar = new CookieJar();
    const send = async (method: string, target: string, form?: Record<string, string>) => {
      const url = new URL(target, running.url);
      const headers: Record<string, string> = { ...evil, cookie: jar.header(url), ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}) };
      const res = await raw(running, method, url.pathname + url.search, headers, form ? new URLSearchParams(form).toString() : undefined);
      jar.store(url, ([] as string[]).concat(res.headers["set-cookie"] ?? []));
      return res;
    };
    const auth = await send("GET", pending.url.pathname + pending.url.search);
    t.equal(auth.status, 303);
    expectLocationOnIssuer(t, running, auth.headers.location, "/auth");
    const interaction = new URL(String(auth.headers.location), running.url).pathname;
    const page = await send("GET", interaction);
    t.equal(page.status, 200);
    t.notMatch(page.body, /evil\.example/, "the sign-in page");
    const login = await send("POST", `${interaction}/login`, { csrf: csrfToken(page.body), email: user.email, password: user.password });
    t.equal(login.status, 303, "signed in");
    expectLocationOnIssuer(t, running, login.headers.location, "the redirect after sign-in");
    // Resume, the first-party client's consent step, resume again: every hop stays on the issuer.
    let location = String(login.headers.location);
    for (let hop = 0; hop < 4 && !location.startsWith(redirectUri); hop++) {
      const next = await send("GET", new URL(location, running.url).pathname);
      t.equal(next.status, 303, `hop ${hop}: a redirect`);
      expectLocationOnIssuer(t, running, next.headers.location, `hop ${hop}`);
      location = String(next.headers.location);
    }
    const callback = new URL(location);
    t.ok(callback.href.startsWith(`${redirectUri}?`), "back to the client with a code");
    t.equal(callback.searchParams.get("iss"), running.url, "its iss is the issuer (RFC 9207)");

    const signOut = await send("GET", "/session/end");
    t.equal(signOut.status, 200);
    t.notMatch(signOut.body, /evil\.example/, "the sign-out page names the issuer's host, and posts to the issuer");
  });

  await t.test("/account sends a visitor without a session to the issuer's /auth", async (t) => {
    const res = await raw(running, "GET", "/account", evil);
    t.equal(res.status, 303);
    const location = new URL(String(res.headers.location));
    t.equal(location.origin, origin);
    t.equal(location.searchParams.get("redirect_uri"), `${running.url}/account`);
  });

  await t.test("error pages and the OpenAPI document", async (t) => {
    const error = await raw(running, "GET", "/auth?client_id=nope&response_type=code&scope=openid", evil);
    t.notMatch(error.body, /evil\.example/, "the authorization error page");
    const openapi = await raw(running, "GET", "/admin/v1/openapi.json", evil);
    t.equal(JSON.parse(openapi.body).servers[0].url, running.url, "the OpenAPI server");
  });
}

t.test("TRUST_PROXY=false", (t) => hostSuite(t, {}));
t.test("TRUST_PROXY=true", (t) => hostSuite(t, { TRUST_PROXY: "true" }));
t.test("TRUST_PROXY=loopback", (t) => hostSuite(t, { TRUST_PROXY: "loopback" }));
