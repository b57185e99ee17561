/**
 * /admin/v1 (README, "Admin API"): the operators' API. Each handler validates
 * with its schema, calls one service (the same ones the CLI calls) and
 * replies. Authentication and the per-route scope check run in onRequest,
 * before any body is read, so a refused request never writes anything. Every
 * request under /admin/v1 goes through that hook, whatever its method: only
 * the OpenAPI document is public, and a request the scope table does not
 * cover is refused (401 without a valid token, else 404), never served.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import swagger from "@fastify/swagger";
import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { authenticateAdminCall, type AdminCaller } from "./auth.ts";
import { isPublicAdminRoute, requiredAdminScope, scopeSatisfies } from "./scopes.ts";
import * as S from "./schemas.ts";
import type { Actor } from "../services/actor.ts";
import { createUser, deleteUser, getUser, listUsers, setUserPassword, updateUser } from "../services/users.ts";
import { resetMfa } from "../services/mfa.ts";
import { bulkRevoke, revokeGrant, revokeSession, revokeUserGrants, revokeUserSessions } from "../services/revocation.ts";
import { listUserGrants, listUserSessions } from "../services/access.ts";
import { sendInvitation } from "../services/account-lifecycle.ts";
import { listPasskeys, removePasskey } from "../services/passkeys.ts";
import { createClient, deleteClient, getClient, listClients, updateClient } from "../services/clients.ts";
import { providerClientValidator } from "../oidc/client-validation.ts";
import { listAudit } from "../services/audit-log.ts";
import { createResourceServer, deleteResourceServer, getResourceServer, listResourceServers, updateResourceServer } from "../services/resource-servers.ts";

declare module "fastify" {
  interface FastifyRequest {
    adminCaller?: AdminCaller;
  }
}

const catchAll = "/admin/v1/*";
const errors = { 400: S.ErrorBody, 401: S.ErrorBody, 403: S.ErrorBody, 404: S.ErrorBody };
const Users = S.Page(S.User);

/** Opaque list cursors: the last item's sort key. */
const encodeCursor = (key: string | number) => Buffer.from(String(key)).toString("base64url");
function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const value = Buffer.from(cursor, "base64url").toString("utf8");
  if (!value || value.length > 200) throw new AppError("invalid_request", "invalid cursor");
  return value;
}

function page<T>(items: T[], limit: number, key: (item: T) => string | number) {
  const last = items[limit - 1];
  return { items: items.slice(0, limit), next_cursor: items.length > limit && last ? encodeCursor(key(last)) : null };
}

export async function adminRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const { db, config, ring } = ctx;

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: { title: "Gatehouse admin API", version: "1" },
      servers: [{ url: config.issuer }],
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });

  app.addSchema(S.ErrorBody);

  // Every admin route must be in the scope table (or explicitly public);
  // HEAD routes, which Fastify adds for each GET, take their GET's entry.
  app.addHook("onRoute", (route) => {
    if (route.url === catchAll) return;
    for (const method of [route.method].flat()) {
      if (!requiredAdminScope(method, route.url) && !isPublicAdminRoute(method, route.url)) {
        throw new Error(`admin route ${method} ${route.url} has no scope in src/admin/scopes.ts`);
      }
    }
  });

  app.addHook("onRequest", async (request, reply) => {
    // Responses can carry secrets (a new client's secret): never cached.
    reply.header("cache-control", "no-store");
    const { method } = request;
    const url = request.routeOptions.url;
    if (isPublicAdminRoute(method, url)) return;
    // Fail closed: authenticate first, whatever the route, so that without a
    // token nothing (not even whether a path exists) is learnt.
    const required = requiredAdminScope(method, url);
    let caller: AdminCaller;
    try {
      caller = await authenticateAdminCall(ctx.host.provider, config.issuer, request.headers.authorization);
    } catch (error) {
      // RFC 6750 section 3: tell the caller how to authenticate.
      reply.header("www-authenticate", request.headers.authorization ? 'Bearer realm="gatehouse-admin", error="invalid_token"' : 'Bearer realm="gatehouse-admin"');
      throw error;
    }
    if (!required) {
      // The catch-all, OPTIONS (no CORS is offered) or a method the table
      // does not list for this path: refused.
      throw new AppError("not_found", `no route for ${method} ${request.url.split("?")[0]}`);
    }
    if (!scopeSatisfies(caller.scopes, required)) {
      reply.header("www-authenticate", `Bearer realm="gatehouse-admin", error="insufficient_scope", scope="${required}"`);
      throw new AppError("forbidden", `this call needs the ${required} scope`);
    }
    request.adminCaller = caller;
  });

  const actor = (request: FastifyRequest): Actor => ({
    actorType: "client",
    actorId: request.adminCaller!.clientId,
    ip: request.ip,
    userAgent: request.headers["user-agent"],
  });
  const validateClient = providerClientValidator(() => ctx.host.provider);

  app.get("/admin/v1/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  // Anything else under /admin/v1 is a JSON 404 (after authentication, in the
  // hook above), not oidc-provider's catch-all.
  app.all(catchAll, { schema: { hide: true } }, async (request) => {
    throw new AppError("not_found", `no route for ${request.method} ${request.url.split("?")[0]}`);
  });

  // Users
  app.post<{ Body: S.CreateUserBody }>(
    "/admin/v1/users",
    { schema: { tags: ["users"], body: S.CreateUserBody, response: { 201: S.User, 409: S.ErrorBody, ...errors } } },
    async (request, reply) => {
      const { email_verified: emailVerified, ...input } = request.body;
      return reply.code(201).send(await createUser(db, config.argon2, { ...input, emailVerified }, actor(request)));
    },
  );

  app.get<{ Querystring: { email?: string; cursor?: string; limit?: number } }>(
    "/admin/v1/users",
    { schema: { tags: ["users"], querystring: Type.Object({ email: Type.Optional(Type.String({ maxLength: 254 })), ...S.PageQuery }, { additionalProperties: false }), response: { 200: Users, ...errors } } },
    async (request) => {
      const limit = request.query.limit ?? 50;
      const items = await listUsers(db, { email: request.query.email, after: decodeCursor(request.query.cursor), limit: limit + 1 });
      return page(items, limit, (u) => u.id);
    },
  );

  app.get<{ Params: { id: string } }>(
    "/admin/v1/users/:id",
    { schema: { tags: ["users"], params: S.IdParams, response: { 200: S.User, ...errors } } },
    async (request) => getUser(db, request.params.id),
  );

  app.patch<{ Params: { id: string }; Body: S.UpdateUserBody }>(
    "/admin/v1/users/:id",
    { schema: { tags: ["users"], params: S.IdParams, body: S.UpdateUserBody, response: { 200: S.User, ...errors } } },
    async (request) => updateUser(db, request.params.id, request.body, actor(request)),
  );

  app.delete<{ Params: { id: string } }>(
    "/admin/v1/users/:id",
    { schema: { tags: ["users"], params: S.IdParams, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      await deleteUser(db, request.params.id, actor(request));
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { id: string }; Body: { password: string } }>(
    "/admin/v1/users/:id/password",
    { schema: { tags: ["users"], params: S.IdParams, body: S.PasswordBody, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      await setUserPassword(db, config.argon2, request.params.id, request.body.password, actor(request), config);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { id: string } }>(
    "/admin/v1/users/:id/invitation",
    {
      schema: {
        tags: ["users"],
        description:
          "Emails the user an invitation link again (valid 7 days; earlier links stop working). Refused when REGISTRATION=off or email is off (400), and when the user already has a password or a passkey (409).",
        params: S.IdParams,
        response: { 202: Type.Null(), 409: S.ErrorBody, ...errors },
      },
    },
    async (request, reply) => {
      await sendInvitation(ctx.lifecycle, request.params.id, actor(request));
      return reply.code(202).send();
      },
    );

  // Two-step verification: the operator's reset (a user who lost their
  // authenticator app and recovery codes); also revokes sessions and grants.
  app.delete<{ Params: { id: string } }>(
    "/admin/v1/users/:id/mfa",
    { schema: { tags: ["users"], summary: "Remove the user's authenticator app and recovery codes; revoke their sessions and grants", params: S.IdParams, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      await resetMfa(db, request.params.id, actor(request), ctx.config);
      return reply.code(204).send();
    },
  );

  // Sessions and grants
  app.get<{ Params: { id: string } }>(
    "/admin/v1/users/:id/sessions",
    { schema: { tags: ["sessions"], params: S.IdParams, response: { 200: S.Page(S.Session), ...errors } } },
    async (request) => {
      await getUser(db, request.params.id);
      return { items: await listUserSessions(db, request.params.id), next_cursor: null };
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/admin/v1/users/:id/sessions",
    { schema: { tags: ["sessions"], params: S.IdParams, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      await getUser(db, request.params.id);
      await revokeUserSessions(db, request.params.id, actor(request));
      return reply.code(204).send();
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/admin/v1/sessions/:id",
    { schema: { tags: ["sessions"], params: S.IdParams, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      await revokeSession(db, request.params.id, actor(request));
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { id: string } }>(
    "/admin/v1/users/:id/grants",
    { schema: { tags: ["grants"], params: S.IdParams, response: { 200: S.Page(S.Grant), ...errors } } },
    async (request) => {
      await getUser(db, request.params.id);
      return { items: await listUserGrants(db, request.params.id), next_cursor: null };
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/admin/v1/grants/:id",
    { schema: { tags: ["grants"], params: S.IdParams, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      await revokeGrant(db, request.params.id, actor(request));
      return reply.code(204).send();
    },
  );

  app.delete<{ Params: { id: string }; Querystring: { client_id?: string } }>(
    "/admin/v1/users/:id/grants",
    {
      schema: {
        tags: ["grants"],
        params: S.IdParams,
        querystring: Type.Object({ client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })) }, { additionalProperties: false }),
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      await getUser(db, request.params.id);
      await revokeUserGrants(db, request.params.id, request.query.client_id, actor(request));
      return reply.code(204).send();
    },
  );

  app.post<{ Body: S.RevocationBody }>(
    "/admin/v1/revocations",
    { schema: { tags: ["grants"], body: S.RevocationBody, response: { 200: S.RevocationResult, ...errors } } },
    async (request) => {
      const { user_id, client_id, issued_before } = request.body;
      const revoked = await bulkRevoke(
        db,
        { userId: user_id, clientId: client_id, issuedBefore: issued_before ? new Date(issued_before) : undefined },
        actor(request),
      );
      return { revoked };
    },
  );

  // Passkeys
  app.get<{ Params: { id: string } }>(
    "/admin/v1/users/:id/passkeys",
    { schema: { tags: ["passkeys"], params: S.IdParams, response: { 200: S.Page(S.Passkey), ...errors } } },
    async (request) => {
      await getUser(db, request.params.id);
      return { items: await listPasskeys(db, request.params.id), next_cursor: null };
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/admin/v1/passkeys/:id",
    { schema: { tags: ["passkeys"], params: S.IdParams, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      await removePasskey(db, request.params.id, undefined, actor(request), config);
      return reply.code(204).send();
    },
  );

  // Clients
  const toInput = (body: Partial<S.CreateClientBody>) => ({
    name: body.client_name!,
    redirectUris: body.redirect_uris,
    postLogoutRedirectUris: body.post_logout_redirect_uris,
    grantTypes: body.grant_types,
    scope: body.scope,
    firstParty: body.first_party,
    backchannelLogoutUri: body.backchannel_logout_uri,
    jwksUri: body.jwks_uri,
    jwks: body.jwks,
    idTokenSignedResponseAlg: body.id_token_signed_response_alg,
    introspectionSignedResponseAlg: body.introspection_signed_response_alg,
    tokenEndpointAuthMethod: body.token_endpoint_auth_method,
  });

  app.post<{ Body: S.CreateClientBody }>(
    "/admin/v1/clients",
    { schema: { tags: ["clients"], body: S.CreateClientBody, response: { 201: S.CreatedClient, ...errors } } },
    async (request, reply) => reply.code(201).send(await createClient(db, ring, toInput(request.body), actor(request), validateClient)),
  );

  app.get<{ Querystring: { cursor?: string; limit?: number } }>(
    "/admin/v1/clients",
    { schema: { tags: ["clients"], querystring: Type.Object(S.PageQuery, { additionalProperties: false }), response: { 200: S.Page(S.Client), ...errors } } },
    async (request) => {
      const limit = request.query.limit ?? 50;
      return page(await listClients(db, { after: decodeCursor(request.query.cursor), limit: limit + 1 }), limit, (c) => c.client_id);
    },
  );

  app.get<{ Params: { id: string } }>(
    "/admin/v1/clients/:id",
    { schema: { tags: ["clients"], params: S.IdParams, response: { 200: S.Client, ...errors } } },
    async (request) => getClient(db, request.params.id),
  );

  app.patch<{ Params: { id: string }; Body: S.UpdateClientBody }>(
    "/admin/v1/clients/:id",
    { schema: { tags: ["clients"], params: S.IdParams, body: S.UpdateClientBody, response: { 200: S.Client, ...errors } } },
    async (request) => {
      const input = toInput(request.body);
      const patch = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
      return updateClient(db, request.params.id, patch, actor(request), validateClient);
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/admin/v1/clients/:id",
    { schema: { tags: ["clients"], params: S.IdParams, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      await deleteClient(db, request.params.id, actor(request));
      return reply.code(204).send();
    },
  );

  // Resource servers (APIs); the admin API is listed first and cannot be changed.
  const resourceSettings = { issuer: config.issuer, accessTokenTtl: config.accessTokenTtl };
  const toResourceInput = (body: S.UpdateResourceServerBody) => ({
    name: body.name,
    scopes: body.scopes,
    tokenFormat: body.token_format,
    signingAlg: body.signing_alg,
    accessTokenTtl: body.access_token_ttl,
    introspectionClients: body.introspection_clients,
  });

  app.post<{ Body: S.CreateResourceServerBody }>(
    "/admin/v1/resources",
    { schema: { tags: ["resources"], body: S.CreateResourceServerBody, response: { 201: S.ResourceServer, 409: S.ErrorBody, ...errors } } },
    async (request, reply) => {
      const input = { identifier: request.body.identifier, ...toResourceInput(request.body), scopes: request.body.scopes };
      return reply.code(201).send(await createResourceServer(db, resourceSettings, input, actor(request)));
    },
  );

  app.get<{ Querystring: { cursor?: string; limit?: number } }>(
    "/admin/v1/resources",
    { schema: { tags: ["resources"], querystring: Type.Object(S.PageQuery, { additionalProperties: false }), response: { 200: S.Page(S.ResourceServer), ...errors } } },
    async (request) => {
      const limit = request.query.limit ?? 50;
      const after = decodeCursor(request.query.cursor);
      const items = await listResourceServers(db, resourceSettings, { after, limit: limit + 1 });
      // The built-in admin API comes first and is not a row: it is never a cursor.
      const rows = items.filter((r) => !r.built_in);
      const builtIn = items.filter((r) => r.built_in);
      const rest = page(rows, limit, (r) => r.id);
      return { items: [...builtIn, ...rest.items], next_cursor: rest.next_cursor };
    },
  );

  app.get<{ Params: { id: string } }>(
    "/admin/v1/resources/:id",
    { schema: { tags: ["resources"], params: S.IdParams, response: { 200: S.ResourceServer, ...errors } } },
    async (request) => getResourceServer(db, resourceSettings, request.params.id),
  );

  app.patch<{ Params: { id: string }; Body: S.UpdateResourceServerBody }>(
    "/admin/v1/resources/:id",
    { schema: { tags: ["resources"], params: S.IdParams, body: S.UpdateResourceServerBody, response: { 200: S.ResourceServer, 409: S.ErrorBody, ...errors } } },
    async (request) => updateResourceServer(db, resourceSettings, request.params.id, toResourceInput(request.body), actor(request)),
  );

  app.delete<{ Params: { id: string } }>(
    "/admin/v1/resources/:id",
    { schema: { tags: ["resources"], params: S.IdParams, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      await deleteResourceServer(db, request.params.id, actor(request));
      return reply.code(204).send();
    },
  );

  // Audit log
  app.get<{ Querystring: { user_id?: string; type?: string; cursor?: string; limit?: number } }>(
    "/admin/v1/audit",
    {
      schema: {
        tags: ["audit"],
        querystring: Type.Object(
          { user_id: Type.Optional(Type.String({ maxLength: 128 })), type: Type.Optional(Type.String({ maxLength: 64 })), ...S.PageQuery },
          { additionalProperties: false },
        ),
        response: { 200: S.Page(S.AuditEvent), ...errors },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? 50;
      const before = decodeCursor(request.query.cursor);
      if (before !== undefined && !/^\d+$/.test(before)) throw new AppError("invalid_request", "invalid cursor");
      const items = await listAudit(db, { userId: request.query.user_id, type: request.query.type, beforeSeq: before === undefined ? undefined : Number(before), limit: limit + 1 });
      return page(items, limit, (e) => e.seq);
    },
  );
}
