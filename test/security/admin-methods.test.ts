/**
 * Attack: Fastify answers HEAD (and routes OPTIONS and unknown methods to the
 * catch-all) for every admin path. An authorization hook that looks the
 * request up as "HEAD /admin/v1/users", finds no scope and lets it through
 * turns `HEAD /admin/v1/users?email=...` into an unauthenticated user
 * enumeration oracle (200 and the body's length). Every method of every
 * route must be authorized; what the scope table does not cover is refused,
 * and a caller without a token learns nothing, not even which paths exist.
 */
import t from "tap";
import Fastify from "fastify";
import type { AppContext } from "../../src/context.ts";
import { adminRoutes } from "../../src/admin/routes.ts";
import { adminRouteScopes, isPublicAdminRoute, requiredAdminScope } from "../../src/admin/scopes.ts";
import { createUser } from "../../src/services/users.ts";
import { startApp, uniqueEmail } from "../helpers/http-flow.ts";
import { adminCall, makeAdminClient } from "../helpers/admin.ts";

const routes = Object.keys(adminRouteScopes).map((key) => {
  const [method, url] = key.split(" ") as [string, string];
  return { key, method, url };
});

t.test("the scope table covers every route the admin module registers, HEAD included", async (t) => {
  const app = Fastify({ logger: false });
  t.teardown(() => app.close());
  const registered: string[] = [];
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) registered.push(`${method} ${route.url}`);
  });
  await app.register(adminRoutes, { config: { issuer: "http://localhost:3000" } } as unknown as AppContext);
  await app.ready();
  const routed = registered.filter((key) => !key.endsWith(" /admin/v1/*"));
  t.ok(routed.some((key) => key.startsWith("HEAD ")), "Fastify registers HEAD routes for the GETs");
  for (const key of routed) {
    const [method, url] = key.split(" ") as [string, string];
    t.ok(isPublicAdminRoute(method, url) || requiredAdminScope(method, url) !== undefined, `${key} is covered`);
  }
  t.equal(requiredAdminScope("HEAD", "/admin/v1/users"), adminRouteScopes["GET /admin/v1/users"], "HEAD takes its GET's scope");
  t.equal(requiredAdminScope("OPTIONS", "/admin/v1/users"), undefined, "OPTIONS is covered by nothing");
  t.equal(requiredAdminScope("HEAD", "/admin/v1/sessions/:id"), undefined, "HEAD of a route without GET is covered by nothing");
});

t.test("admin API methods on a live server", async (t) => {
  const running = await startApp(t);
  const read = await makeAdminClient(running, "admin:read");
  const write = await makeAdminClient(running, "admin:write");
  const victim = await createUser(running.db, running.config.argon2, { email: uniqueEmail("victim") });

  await t.test("the enumeration attack: HEAD /admin/v1/users?email= without a token", async (t) => {
    for (const email of [victim.email, uniqueEmail("nobody")]) {
      const res = await adminCall(running, "HEAD", `/admin/v1/users?email=${encodeURIComponent(email)}`, { token: null });
      t.equal(res.status, 401, "401, not 200");
      t.match(res.headers.get("www-authenticate"), /^Bearer\b/);
    }
    const found = await adminCall(running, "HEAD", `/admin/v1/users?email=${encodeURIComponent(victim.email)}`, { token: null });
    const missing = await adminCall(running, "HEAD", `/admin/v1/users?email=${encodeURIComponent(uniqueEmail("nobody"))}`, { token: null });
    t.equal(found.headers.get("content-length"), missing.headers.get("content-length"), "a known and an unknown email answer alike");
  });

  await t.test("every route x {GET, HEAD, OPTIONS, PUT, its own method} without a token or with a garbage one: 401", async (t) => {
    for (const { key, method, url } of routes) {
      const path = url.replace(/:id/g, "some-id");
      for (const m of new Set(["GET", "HEAD", "OPTIONS", "PUT", method])) {
        for (const token of [null, "garbage-token"]) {
          const res = await adminCall(running, m, path, { token });
          t.equal(res.status, 401, `${m} ${path} (${key}) ${token ? "with a garbage token" : "without a token"}: 401 (got ${res.status})`);
          if (m !== "HEAD") t.equal(res.json?.error, "unauthorized", `${m} ${path}: JSON error`);
        }
      }
    }
  });

  await t.test("HEAD with a read token answers like GET; with a token lacking admin:read, 403", async (t) => {
    // The built-in admin API resource server ("admin") always exists.
    const ids: Record<string, string> = { users: victim.id, clients: read.clientId, resources: "admin" };
    for (const { key, method, url } of routes.filter((r) => r.method === "GET")) {
      const path = url.replace(/\/(users|clients|resources)\/:id/, (_m, resource: string) => `/${resource}/${ids[resource]}`);
      const get = await adminCall(running, "GET", path, { token: read.token });
      const head = await adminCall(running, "HEAD", path, { token: read.token });
      t.equal(head.status, 200, `HEAD ${path} (${key}) with admin:read: 200`);
      t.equal(get.status, 200, `GET ${path}: 200`);
      t.equal(head.text, "", "HEAD has no body");
      const denied = await adminCall(running, "HEAD", path, { token: write.token });
      t.equal(denied.status, 403, `HEAD ${path} with admin:write only: 403`);
      t.match(denied.headers.get("www-authenticate"), /insufficient_scope/);
    }
  });

  await t.test("the catch-all authenticates before it answers 404", async (t) => {
    for (const [m, path] of [
      ["GET", "/admin/v1/nothing-here"],
      ["HEAD", "/admin/v1/nothing-here"],
      ["DELETE", "/admin/v1/users/some-id/everything"],
      ["OPTIONS", "/admin/v1/"],
    ] as const) {
      t.equal((await adminCall(running, m, path, { token: null })).status, 401, `${m} ${path} without a token: 401`);
      const res = await adminCall(running, m, path, { token: read.token });
      t.equal(res.status, 404, `${m} ${path} with a token: 404`);
      if (m !== "HEAD") t.equal(res.json?.error, "not_found", "a JSON error");
    }
  });

  await t.test("OPTIONS and uncovered methods are refused for an authenticated caller, never served", async (t) => {
    for (const [m, path] of [
      ["OPTIONS", "/admin/v1/users"],
      ["PUT", "/admin/v1/users"],
      ["HEAD", `/admin/v1/sessions/some-id`],
      ["OPTIONS", "/admin/v1/openapi.json"],
    ] as const) {
      const res = await adminCall(running, m, path, { token: read.token });
      t.ok(res.status === 404 || res.status === 405, `${m} ${path}: 404 or 405 (got ${res.status})`);
      t.notOk(res.headers.get("access-control-allow-origin"), "no CORS");
      if (m !== "HEAD") t.type(res.json?.error, "string", "a JSON error");
    }
  });

  await t.test("the OpenAPI document stays public, for GET and HEAD", async (t) => {
    t.equal((await adminCall(running, "GET", "/admin/v1/openapi.json", { token: null })).status, 200);
    t.equal((await adminCall(running, "HEAD", "/admin/v1/openapi.json", { token: null })).status, 200);
  });
});
