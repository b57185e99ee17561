/**
 * The admin API's authorization table (SPEC section 8): every route and the
 * scope it needs. Reads need admin:read; revocations need admin:revoke or
 * admin:write; every other change needs admin:write. The auth hook reads this
 * table; a route missing from it refuses to start.
 */
export type AdminScope = "admin:read" | "admin:revoke" | "admin:write";

export const adminRouteScopes: Readonly<Record<string, AdminScope>> = {
  "POST /admin/v1/users": "admin:write",
  "GET /admin/v1/users": "admin:read",
  "GET /admin/v1/users/:id": "admin:read",
  "PATCH /admin/v1/users/:id": "admin:write",
  "DELETE /admin/v1/users/:id": "admin:write",
  "POST /admin/v1/users/:id/password": "admin:write",
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
  "GET /admin/v1/audit": "admin:read",
};

/** Routes anyone may read: the API's own description. */
export const publicAdminRoutes: ReadonlySet<string> = new Set(["GET /admin/v1/openapi.json"]);

/** Whether a token's scopes satisfy the route's requirement (admin:write also revokes). */
export function scopeSatisfies(granted: ReadonlySet<string>, required: AdminScope): boolean {
  if (granted.has(required)) return true;
  return required === "admin:revoke" && granted.has("admin:write");
}
