/**
 * Discovery and the JWKS are answered from a copy of the provider's own
 * first answer (plugins/oidc.ts, keptDocuments): the copy must be the same
 * response, headers and all, with the request id and CORS origin of each
 * request, and must follow the provider when a new key set replaces it.
 */
import t from "tap";
import { buildTestApp, injectBehindTls, startApp, type RunningApp } from "../helpers/http-flow.ts";
import { rotateSigningKeys } from "../../src/services/signing-keys.ts";
import { cliOperator } from "../../src/services/actor.ts";

async function get(running: RunningApp, path: string, init: RequestInit = {}) {
  const res = await fetch(`${running.url}${path}`, init);
  const headers = Object.fromEntries([...res.headers].filter(([name]) => !["date", "x-request-id", "keep-alive", "connection"].includes(name)));
  return { status: res.status, headers, requestId: res.headers.get("x-request-id"), body: await res.text() };
}

t.test("discovery and JWKS copies are the provider's responses", async (t) => {
  const running = await startApp(t);
  for (const path of ["/.well-known/openid-configuration", "/jwks"]) {
    const first = await get(running, path);
    const second = await get(running, path);
    t.equal(first.status, 200, `${path}: first answer, from the provider`);
    t.equal(second.status, 200, `${path}: second answer, from the copy`);
    t.same(second.headers, first.headers, `${path}: the same headers`);
    t.equal(second.body, first.body, `${path}: the same body`);
    t.equal(second.headers["access-control-allow-origin"], "*", "no Origin: *");
    t.match(second.headers["vary"], /Origin/i, "Vary: Origin");
    t.ok(first.requestId && second.requestId && first.requestId !== second.requestId, "each response has its own request id");

    const cors = await get(running, path, { headers: { origin: "https://rp.example" } });
    t.equal(cors.headers["access-control-allow-origin"], "https://rp.example", `${path}: the request's Origin is echoed, as oidc-provider does`);
    t.equal(cors.body, first.body);

    const head = await get(running, path, { method: "HEAD" });
    t.equal(head.status, 200, `${path}: HEAD`);
    t.equal(head.body, "", "no body");
    t.equal(head.headers["content-length"], first.headers["content-length"], "the GET's length");
  }
  t.match((await get(running, "/jwks")).headers["cache-control"], /max-age=\d+/, "the JWKS keeps its Cache-Control");

  const preflight = await fetch(`${running.url}/jwks`, { method: "OPTIONS", headers: { origin: "https://rp.example", "access-control-request-method": "GET" } });
  t.equal(preflight.status, 204, "a CORS preflight goes to the provider");
  t.equal(preflight.headers.get("access-control-allow-methods"), "GET");

  const metrics = await (await fetch(`${running.url}/metrics`)).text();
  for (const path of ["/.well-known/openid-configuration", "/jwks"]) {
    const served = Number(new RegExp(`gatehouse_http_requests_total\\{method="GET",route="${path}",status="200"\\} (\\d+)`).exec(metrics)?.[1]);
    // Each path: the first answer, the copy, the CORS request, and the JWKS's Cache-Control check.
    t.equal(served, path === "/jwks" ? 4 : 3, `${path}: each answer, copies included, is counted once (${served})`);
  }
  // A provider route answered by the provider itself is counted once too, under its own route.
  const refused = await fetch(`${running.url}/token`, { method: "POST", body: new URLSearchParams({ grant_type: "client_credentials" }) });
  const after = await (await fetch(`${running.url}/metrics`)).text();
  const posts = [...after.matchAll(/gatehouse_http_requests_total\{method="POST",route="([^"]+)",status="(\d+)"\} (\d+)/g)].map((m) => [m[1], m[2], Number(m[3])]);
  t.same(posts, [["/token", String(refused.status), 1]], "one POST, one count");
});

t.test("a new provider (a new key set) is answered afresh", async (t) => {
  const running = await startApp(t);
  const before = JSON.parse((await get(running, "/jwks")).body) as { keys: { kid: string }[] };
  await get(running, "/jwks"); // the copy
  const made = await rotateSigningKeys(running.db, running.ring, { immediately: false }, cliOperator);
  t.ok(made.length > 0, `new keys made (${made.join(", ")})`);
  // One round of the key set watcher: it builds a new provider and swaps it in.
  await running.app.keySetWatcher.check();
  const after = JSON.parse((await get(running, "/jwks")).body) as { keys: { kid: string }[] };
  for (const kid of made) t.ok(after.keys.some((k) => k.kid === kid), `${kid} is published at once`);
  t.equal(after.keys.length, before.keys.length + made.length, "next to the keys published before");
});

t.test("the provider's responses carry the security headers of our own routes (helmet's), HSTS included on https", async (t) => {
  const issuer = "https://id.example.test";
  const { app } = await buildTestApp(t, { env: { ISSUER: issuer, TRUST_PROXY: "true" } });
  const { inject } = injectBehindTls(app, issuer);
  const security = (headers: Record<string, unknown>) =>
    Object.fromEntries(
      Object.entries(headers).filter(([name]) => /^(cross-origin|origin-agent|referrer|strict-transport|x-content|x-dns|x-download|x-frame|x-permitted|x-xss)/.test(name)),
    );
  const ours = security((await inject("GET", "/healthz")).headers);
  t.equal(ours["strict-transport-security"], "max-age=31536000; includeSubDomains", "helmet's HSTS on our own route");
  for (const [method, url] of [["GET", "/jwks"], ["GET", "/jwks"], ["GET", "/.well-known/openid-configuration"], ["POST", "/token"], ["GET", "/auth"]] as const) {
    const res = await inject(method, url);
    t.same(security(res.headers), ours, `${method} ${url}: the same security headers`);
    t.match(String(res.headers["content-security-policy"]), /frame-ancestors 'none'/, "and a CSP");
  }
});
