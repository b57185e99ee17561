/**
 * The admin API's authorization table (src/admin/scopes.ts) against the README's
 * admin API rule: reads need admin:read; the DELETEs of sessions and grants and
 * bulk revocation need admin:revoke (or admin:write); every other change
 * needs admin:write. The route module is registered alone on a bare Fastify
 * instance (no server, no database) to prove that the routes it registers
 * are exactly the table's keys plus the public ones.
 */
import t from "tap";
import Fastify from "fastify";
import type { AppContext } from "../../src/context.ts";
import { adminRoutes } from "../../src/admin/routes.ts";
import { adminRouteScopes, publicAdminRoutes, scopeSatisfies, type AdminScope } from "../../src/admin/scopes.ts";

const scopes: AdminScope[] = ["admin:read", "admin:revoke", "admin:write"];

/** the README's admin API rule, written independently of the table. */
function specScopeFor(key: string): AdminScope {
  const [method, path] = key.split(" ") as [string, string];
  if (method === "GET") return "admin:read";
  const revokesSessionsOrGrants = method === "DELETE" && /\/(sessions|grants)(\/:id)?$/.test(path);
  const bulkRevocation = method === "POST" && path === "/admin/v1/revocations";
  return revokesSessionsOrGrants || bulkRevocation ? "admin:revoke" : "admin:write";
}

/** Every route the README documents, with the scope its rule gives. */
const specRoutes: Record<string, AdminScope> = {
  "POST /admin/v1/users": "admin:write",
  "GET /admin/v1/users": "admin:read",
  "GET /admin/v1/users/:id": "admin:read",
  "PATCH /admin/v1/users/:id": "admin:write",
  "DELETE /admin/v1/users/:id": "admin:write",
  "POST /admin/v1/users/:id/password": "admin:write",
  "POST /admin/v1/users/:id/invitation": "admin:write",
  "DELETE /admin/v1/users/:id/mfa": "admin:write",
  "GET /admin/v1/users/:id/sessions": "admin:read",
  "DELETE /admin/v1/users/:id/sessions": "admin:revoke",
  "DELETE /admin/v1/sessions/:id": "admin:revoke",
  "GET /admin/v1/users/:id/grants": "admin:read",
  "DELETE /admin/v1/grants/:id": "admin:revoke",
  "DELETE /admin/v1/users/:id/grants": "admin:revoke",
  "POST /admin/v1/revocations": "admin:revoke",
  "GET /admin/v1/users/:id/passkeys": "admin:read",
  "DELETE /admin/v1/passkeys/:id": "admin:write",
  "POST /admin/v1/clients": "admin:write",
  "GET /admin/v1/clients": "admin:read",
  "GET /admin/v1/clients/:id": "admin:read",
  "PATCH /admin/v1/clients/:id": "admin:write",
  "DELETE /admin/v1/clients/:id": "admin:write",
  "POST /admin/v1/resources": "admin:write",
  "GET /admin/v1/resources": "admin:read",
  "GET /admin/v1/resources/:id": "admin:read",
  "PATCH /admin/v1/resources/:id": "admin:write",
  "DELETE /admin/v1/resources/:id": "admin:write",
  "GET /admin/v1/audit": "admin:read",
};

t.test("the table lists every route the README documents, and only those", async (t) => {
  t.same(Object.keys(adminRouteScopes).sort(), Object.keys(specRoutes).sort());
  t.same({ ...adminRouteScopes }, specRoutes, "with the scope the README's rule gives each");
});

t.test("every entry follows the rule: GET reads, session/grant DELETEs and bulk revocation revoke, the rest writes", async (t) => {
  for (const [key, scope] of Object.entries(adminRouteScopes)) {
    t.equal(scope, specScopeFor(key), key);
  }
  const byScope = (s: AdminScope) => Object.keys(adminRouteScopes).filter((k) => adminRouteScopes[k] === s).sort();
  t.same(
    byScope("admin:revoke"),
    [
      "DELETE /admin/v1/grants/:id",
      "DELETE /admin/v1/sessions/:id",
      "DELETE /admin/v1/users/:id/grants",
      "DELETE /admin/v1/users/:id/sessions",
      "POST /admin/v1/revocations",
    ],
    "exactly the revocations need admin:revoke",
  );
  t.ok(byScope("admin:read").every((k) => k.startsWith("GET ")), "every admin:read route is a GET");
  t.ok(
    byScope("admin:write").every((k) => !k.startsWith("GET ")),
    "no GET needs admin:write",
  );
  t.equal(adminRouteScopes["DELETE /admin/v1/passkeys/:id"], "admin:write", "removing a passkey is a change, not a revocation");
  t.equal(adminRouteScopes["DELETE /admin/v1/users/:id"], "admin:write", "deleting a user (which also revokes) needs admin:write");
  t.equal(adminRouteScopes["POST /admin/v1/users/:id/password"], "admin:write", "setting a password (which also revokes) needs admin:write");
  t.equal(adminRouteScopes["DELETE /admin/v1/users/:id/mfa"], "admin:write", "resetting two-step verification (which also revokes) needs admin:write");
});

t.test("the only public route is the OpenAPI document, and it is not in the scope table", async (t) => {
  t.same([...publicAdminRoutes], ["GET /admin/v1/openapi.json"]);
  for (const key of publicAdminRoutes) t.notOk(key in adminRouteScopes, `${key} needs no scope`);
});

t.test("scopeSatisfies", async (t) => {
  const cases: [granted: string[], required: AdminScope, expected: boolean, why: string][] = [
    [["admin:read"], "admin:read", true, "a scope satisfies itself"],
    [["admin:revoke"], "admin:revoke", true, "a scope satisfies itself"],
    [["admin:write"], "admin:write", true, "a scope satisfies itself"],
    [["admin:write"], "admin:revoke", true, "admin:write also revokes"],
    [["admin:revoke"], "admin:write", false, "admin:revoke cannot create or change"],
    [["admin:write"], "admin:read", false, "admin:write does not read"],
    [["admin:revoke"], "admin:read", false, "admin:revoke does not read"],
    [["admin:read"], "admin:revoke", false, "admin:read does not revoke"],
    [["admin:read"], "admin:write", false, "admin:read does not write"],
    [[], "admin:read", false, "no scope satisfies nothing"],
    [["openid", "email", "offline_access"], "admin:read", false, "user scopes are not admin scopes"],
    [["admin"], "admin:read", false, "no prefix matching"],
    [["admin:read:extra"], "admin:read", false, "no prefix matching"],
    [["ADMIN:READ"], "admin:read", false, "scopes are case-sensitive (RFC 6749 section 3.3)"],
    [["admin:read", "admin:revoke"], "admin:write", false, "read and revoke together do not make write"],
    [["admin:read", "admin:revoke", "admin:write"], "admin:read", true, "all three read"],
  ];
  for (const [granted, required, expected, why] of cases) {
    t.equal(scopeSatisfies(new Set(granted), required), expected, `[${granted.join(" ")}] -> ${required}: ${why}`);
  }

  // Exhaustively, every combination of the three scopes against every requirement.
  for (let mask = 0; mask < 8; mask++) {
    const granted = new Set(scopes.filter((_, i) => mask & (1 << i)));
    for (const required of scopes) {
      const expected = granted.has(required) || (required === "admin:revoke" && granted.has("admin:write"));
      t.equal(scopeSatisfies(granted, required), expected, `{${[...granted].join(", ")}} -> ${required}`);
    }
  }
});

t.test("the admin route module registers exactly the table's routes plus the public ones", async (t) => {
  const app = Fastify({ logger: false });
  t.teardown(() => app.close());
  const registered = new Set<string>();
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) {
      if (method !== "HEAD") registered.add(`${method} ${route.url}`);
    }
  });
  // Registration reads only the issuer; handlers (never called here) use the rest.
  const context = { config: { issuer: "http://localhost:3000" } } as unknown as AppContext;
  await app.register(adminRoutes, context);
  await app.ready();
  const underAdmin = [...registered].filter((k) => k.split(" ")[1]!.startsWith("/admin/v1"));
  // Plus the catch-all that answers a JSON 404 for anything else under /admin/v1.
  const catchAll = underAdmin.filter((k) => k.endsWith(" /admin/v1/*"));
  t.ok(catchAll.length > 0, "a catch-all answers unknown admin paths");
  t.same(underAdmin.filter((k) => !catchAll.includes(k)).sort(), [...Object.keys(adminRouteScopes), ...publicAdminRoutes].sort());
  t.same([...registered].filter((k) => !underAdmin.includes(k)), [], "and nothing outside /admin/v1");
});

t.test("a route missing from the table stops the app from starting", async (t) => {
  const app = Fastify({ logger: false });
  t.teardown(() => app.close());
  const context = { config: { issuer: "http://localhost:3000" } } as unknown as AppContext;
  const start = async () => {
    await app.register(async (scoped) => {
      await adminRoutes(scoped, context);
      scoped.get("/admin/v1/secret-export", async () => ({}));
    });
    await app.ready();
  };
  await t.rejects(start(), /admin route GET \/admin\/v1\/secret-export has no scope in src\/admin\/scopes\.ts/);
});
