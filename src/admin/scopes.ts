/**
 * The admin API's authorization table (docs: README, "Admin API"): every
 * route and the scope it needs. Reads need admin:read; revocations need
 * admin:revoke or admin:write; every other change needs admin:write. The auth
 * hook reads this table; a route missing from it refuses to start, and a
 * request it does not cover is refused.
 */
import type { AdminScope } from "../scopes.ts";

export type { AdminScope };

export const adminRouteScopes: Readonly<Record<string, AdminScope>> = {
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

/** Routes anyone may read: the API's own description. */
export const publicAdminRoutes: ReadonlySet<string> = new Set(["GET /admin/v1/openapi.json"]);

/**
 * The scope a request needs, or undefined when the table does not cover it
 * (the caller must then be refused, never passed through). HEAD is GET
 * without a body (RFC 9110 section 9.3.2), so it needs exactly its GET's
 * scope; Fastify answers HEAD for every GET route by itself. OPTIONS and any
 * other method are covered by nothing: the admin API offers no CORS.
 */
export function requiredAdminScope(method: string, routeUrl: string | undefined): AdminScope | undefined {
  if (routeUrl === undefined) return undefined;
  const key = `${method === "HEAD" ? "GET" : method} ${routeUrl}`;
  return Object.hasOwn(adminRouteScopes, key) ? adminRouteScopes[key] : undefined;
}

/** Whether a request may be answered without a token (HEAD as its GET). */
export function isPublicAdminRoute(method: string, routeUrl: string | undefined): boolean {
  return publicAdminRoutes.has(`${method === "HEAD" ? "GET" : method} ${routeUrl}`);
}

/** Whether a token's scopes satisfy the route's requirement (admin:write also revokes). */
export function scopeSatisfies(granted: ReadonlySet<string>, required: AdminScope): boolean {
  if (granted.has(required)) return true;
  return required === "admin:revoke" && granted.has("admin:write");
}
