/**
 * The admin API, route by route (README),
 * against the app built in-process and listening on 127.0.0.1, on every
 * database provider. Tokens come from the real token endpoint
 * (client_credentials). For every route of the scope table: the success
 * (status, body, effect on the database, audit event), then every way to be
 * refused (no token, a garbage token, a token lacking the scope, an unknown
 * id, malformed JSON, schema violations, an oversized body), each checked to
 * have written nothing: every table's row count and the audit log are the
 * same before and after.
 */
import { settleOutbox } from "../helpers/smtp.ts";
import t, { type Test } from "tap";
import { randomBytes } from "node:crypto";
import { Validator } from "@seriousme/openapi-schema-validator";
import type { DatabaseProvider } from "../../src/db/database.ts";
import { adminRouteScopes, type AdminScope } from "../../src/admin/scopes.ts";
import { createClient } from "../../src/services/clients.ts";
import { createUser } from "../../src/services/users.ts";
import { createResourceServer } from "../../src/services/resource-servers.ts";
import { systemActor } from "../../src/services/actor.ts";
import { verifyPassword } from "../../src/auth/passwords.ts";
import { providers } from "../helpers/databases.ts";
import { turnOnTotp } from "../helpers/mfa.ts";
import { runCli } from "../helpers/processes.ts";
import { startApp, strongPassword, uniqueEmail, type RunningApp } from "../helpers/http-flow.ts";
import {
  AdminApi,
  addPasskey,
  adminCall,
  auditEventsAfter,
  clientCredentialsToken,
  lastAuditSeq,
  makeAdminClient,
  oversizedJson,
  signIn,
  tableCounts,
  type AdminClient,
  type ApiResponse,
  type CallOptions,
} from "../helpers/admin.ts";

const isoDate = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
const userFields = ["created_at", "disabled", "email", "email_verified", "has_password", "id", "name", "role", "updated_at"];
const clientFields = [
  "backchannel_logout_uri",
  "client_id",
  "client_name",
  "created_at",
  "first_party",
  "grant_types",
  "id_token_signed_response_alg",
  "introspection_signed_response_alg",
  "jwks",
  "jwks_uri",
  "post_logout_redirect_uris",
  "redirect_uris",
  "scope",
  "token_endpoint_auth_method",
  "updated_at",
];
const resourceFields = [
  "access_token_ttl",
  "built_in",
  "created_at",
  "id",
  "identifier",
  "introspection_clients",
  "name",
  "scopes",
  "signing_alg",
  "token_format",
  "updated_at",
];
const unknownId = () => `no-such-id-${randomBytes(6).toString("hex")}`;
const keys = (value: object) => Object.keys(value).sort();

/** A refused call answers JSON {error, error_description} with `status` (and `code`, when given). */
function expectError(t: Test, res: ApiResponse, status: number, code?: string | RegExp) {
  t.equal(res.status, status, `status ${status} (got ${res.status}: ${res.text.slice(0, 200)})`);
  t.match(res.headers.get("content-type"), /^application\/json/, "a JSON body");
  t.same(keys(res.json ?? {}), ["error", "error_description"], "{error, error_description}");
  t.type(res.json?.error_description, "string");
  if (code !== undefined) t.match(res.json?.error, code, `error ${String(code)}`);
}

/** Runs a call that must be refused and proves that it wrote nothing, audit log included. */
async function refused(
  t: Test,
  running: RunningApp,
  label: string,
  call: () => Promise<ApiResponse>,
  expected: { status: number; code?: string | RegExp },
) {
  await t.test(label, async (t) => {
    const before = await tableCounts(running.db);
    const seq = await lastAuditSeq(running.db);
    const res = await call();
    expectError(t, res, expected.status, expected.code);
    t.same(await tableCounts(running.db), before, "no row was written or deleted");
    t.equal(await lastAuditSeq(running.db), seq, "no audit event was written");
  });
}

/** the README's admin API rule, independent of scopeSatisfies: admin:write also revokes. */
const scopeAllows = (scope: string, required: AdminScope) => {
  const held = scope.split(" ");
  return held.includes(required) || (required === "admin:revoke" && held.includes("admin:write"));
};


interface Prepared {
  /** The route's path with real ids. */
  path: string;
  /** The valid body for the success call (and for the refusals, so that only the tested fault differs). */
  body?: unknown;
  /** Checks the success response and its effect. */
  verify(t: Test, res: ApiResponse): Promise<void>;
}

interface BadInput {
  label: string;
  /** A body (sent as JSON), or a query string appended to the path ("?limit=0"). */
  body?: unknown;
  query?: string;
  status?: number;
  code?: string | RegExp;
}

interface RouteCase {
  /** The key of adminRouteScopes: "METHOD /admin/v1/...". */
  key: string;
  status: number;
  /** The audit event a successful change writes. */
  audit?: string;
  /** Builds fresh fixtures through the services and returns the call to make. */
  prepare(): Promise<Prepared>;
  /** The route's path with an id that does not exist (routes that take an id). */
  unknown?: () => string;
  badInputs?: BadInput[];
}

/** Everything a route case needs: the running app and its admin tokens. */
interface Harness {
  running: RunningApp;
  admins: Record<"read" | "revoke" | "write" | "readRevoke" | "all", AdminClient>;
}

function routeCases(h: Harness): RouteCase[] {
  const { running } = h;
  const { prisma } = running.db;
  const newUser = async (input: { name?: string; role?: string } = {}) =>
    createUser(running.db, running.config.argon2, { email: uniqueEmail("admin-api"), ...input });
  const newClient = async () =>
    createClient(running.db, running.ring, { name: "Fixture app", redirectUris: ["https://fixture.example/cb"], scope: "openid email" });
  const withId = (path: string, id: string) => path.replace(/:id/, encodeURIComponent(id));
  const newResource = async () => {
    const tag = randomBytes(4).toString("hex");
    return createResourceServer(running.db, running.config, { identifier: `https://fixture-${tag}.example/api`, scopes: [`read:fixture-${tag}`] }, systemActor);
  };
  const rowsOfAccount = (accountId: string, models: string[]) => prisma.oidcRecord.count({ where: { accountId, model: { in: models } } });

  return [
    {
      key: "POST /admin/v1/users",
      status: 201,
      audit: "user.created",
      async prepare() {
        const email = uniqueEmail("New.Person").replace("@example.test", "@Example.TEST");
        const password = strongPassword();
        return {
          path: "/admin/v1/users",
          body: { email, name: "New Person", role: "editor", password },
          async verify(t, res) {
            t.same(keys(res.json), userFields, "the user's fields, nothing more (no password, no hash)");
            t.match(res.json, { email: email.toLowerCase(), name: "New Person", role: "editor", disabled: false, has_password: true });
            t.match(res.json.created_at, isoDate);
            const row = await prisma.user.findUnique({ where: { id: res.json.id } });
            t.equal(row?.email, email.toLowerCase(), "stored, email lower-cased");
            t.match(row?.passwordHash, /^\$argon2id\$/, "the password stored as an argon2id hash");
            t.ok(await verifyPassword(row!.passwordHash!, password), "which verifies the password");
          },
        };
      },
      badInputs: [
        { label: "email of the wrong type", body: { email: { address: "a@example.test" } } },
        { label: "no email", body: { name: "Nobody" } },
        { label: "a malformed email", body: { email: "not-an-email" } },
        { label: "an email with a space", body: { email: "a b@example.test" } },
        { label: "an unknown role", body: { email: uniqueEmail(), role: "root" } },
        { label: "an unknown property", body: { email: uniqueEmail(), is_admin: true } },
        { label: "a password too short", body: { email: uniqueEmail(), password: "short" } },
        { label: "a password too long", body: { email: uniqueEmail(), password: "p".repeat(257) } },
        { label: "a common password", body: { email: uniqueEmail(), password: "password1234" }, code: "invalid_password" },
        { label: "a body that is an array", body: [{ email: uniqueEmail() }] },
        { label: "a name of the wrong type (number)", body: { email: uniqueEmail(), name: 42 } },
        { label: "a name of the wrong type (boolean)", body: { email: uniqueEmail(), name: true } },
      ],
    },
    {
      key: "GET /admin/v1/users",
      status: 200,
      async prepare() {
        const user = await newUser({ name: "Listed" });
        return {
          path: "/admin/v1/users",
          async verify(t, res) {
            t.same(keys(res.json), ["items", "next_cursor"], "a list: {items, next_cursor}");
            t.ok(res.json.items.every((u: object) => keys(u).join() === userFields.join()), "every item is a user");
            t.match(res.json.items.find((u: { id: string }) => u.id === user.id), { email: user.email, name: "Listed" }, "the new user is listed");
          },
        };
      },
      badInputs: [
        { label: "limit=0", query: "?limit=0" },
        { label: "limit=201", query: "?limit=201" },
        { label: "limit=ten", query: "?limit=ten" },
        { label: "an empty cursor", query: "?cursor=" },
        { label: "an unknown parameter", query: "?role=admin" },
      ],
    },
    {
      key: "GET /admin/v1/users/:id",
      status: 200,
      async prepare() {
        const user = await newUser({ name: "Shown", role: "admin" });
        return {
          path: withId("/admin/v1/users/:id", user.id),
          async verify(t, res) {
            t.same(keys(res.json), userFields);
            t.match(res.json, { id: user.id, email: user.email, name: "Shown", role: "admin", disabled: false, has_password: false });
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id", unknownId()),
    },
    {
      key: "PATCH /admin/v1/users/:id",
      status: 200,
      audit: "user.updated",
      async prepare() {
        const user = await newUser({ name: "Before" });
        return {
          path: withId("/admin/v1/users/:id", user.id),
          body: { name: "After", role: "admin" },
          async verify(t, res) {
            t.match(res.json, { id: user.id, name: "After", role: "admin", disabled: false });
            const row = await prisma.user.findUnique({ where: { id: user.id } });
            t.match(row, { name: "After", role: "admin", email: user.email }, "stored; the email is untouched");
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id", unknownId()),
      badInputs: [
        { label: "an empty body", body: {} },
        { label: "an unknown role", body: { role: "root" } },
        { label: "the email (not changeable)", body: { email: uniqueEmail() } },
        { label: "a password (not through PATCH)", body: { password: strongPassword() } },
        { label: "disabled of the wrong type (string)", body: { disabled: "yes" } },
        { label: "a name too long", body: { name: "n".repeat(201) } },
        { label: "a name with control characters", body: { name: "bad\u0007name" } },
        { label: "disabled of the wrong type (number)", body: { disabled: 0 } },
        { label: 'disabled of the wrong type ("false")', body: { disabled: "false" } },
        { label: "role of the wrong type (array)", body: { role: ["admin"] } },
      ],
    },
    {
      key: "DELETE /admin/v1/users/:id",
      status: 204,
      audit: "user.deleted",
      async prepare() {
        const s = await signIn(running);
        return {
          path: withId("/admin/v1/users/:id", s.user.id),
          async verify(t, res) {
            t.equal(res.text, "", "no body");
            t.equal(await prisma.user.count({ where: { id: s.user.id } }), 0, "the user is gone");
            t.equal(await rowsOfAccount(s.user.id, ["Session", "Grant", "AccessToken", "RefreshToken"]), 0, "with their sessions, grants and tokens");
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id", unknownId()),
    },
    {
      key: "POST /admin/v1/users/:id/password",
      status: 204,
      audit: "password.changed",
      async prepare() {
        const s = await signIn(running);
        const password = strongPassword();
        return {
          path: withId("/admin/v1/users/:id/password", s.user.id),
          body: { password },
          async verify(t, res) {
            t.equal(res.text, "", "no body");
            const row = await prisma.user.findUnique({ where: { id: s.user.id } });
            t.ok(await verifyPassword(row!.passwordHash!, password), "the new password verifies");
            t.notOk(await verifyPassword(row!.passwordHash!, s.user.password), "the old one does not");
            t.equal(await rowsOfAccount(s.user.id, ["Session", "Grant", "AccessToken", "RefreshToken"]), 0, "sessions, grants and tokens are revoked");
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id/password", unknownId()),
      badInputs: [
        { label: "no password", body: {} },
        { label: "a password too short", body: { password: "short" } },
        { label: "a password too long", body: { password: "p".repeat(257) } },
        { label: "a common password", body: { password: "password1234" }, code: "invalid_password" },
        { label: "an unknown property", body: { password: strongPassword(), email: "x@example.test" } },
        { label: "a password of the wrong type (object)", body: { password: { value: strongPassword() } } },
        { label: "a password of the wrong type (number)", body: { password: 918273645546372 } },
      ],
    },
    {
      key: "POST /admin/v1/users/:id/invitation",
      status: 202,
      audit: "email_link.sent",
      async prepare() {
        const user = await newUser();
        return {
          path: withId("/admin/v1/users/:id/invitation", user.id),
          async verify(t, res) {
            t.equal(res.text, "", "no body");
            t.equal(await prisma.emailLinkToken.count({ where: { userId: user.id, purpose: "invitation" } }), 1, "an invitation link");
            t.equal(await prisma.emailOutbox.count({ where: { userId: user.id, kind: "invitation" } }), 1, "and its email, queued");
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id/invitation", unknownId()),
    },
    {
      key: "GET /admin/v1/users/:id/sessions",
      status: 200,
      async prepare() {
        const s = await signIn(running);
        return {
          path: withId("/admin/v1/users/:id/sessions", s.user.id),
          async verify(t, res) {
            t.same(keys(res.json), ["items", "next_cursor"]);
            t.equal(res.json.items.length, 1, "one session");
            const [session] = res.json.items;
            t.same(keys(session), ["created_at", "expires_at", "id"]);
            t.equal(session.id, s.sessionId, "the user's session");
            t.ok(Date.parse(session.expires_at) > Date.now(), "expiring in the future");
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id/sessions", unknownId()),
    },
    {
      key: "DELETE /admin/v1/users/:id/sessions",
      status: 204,
      audit: "sessions.revoked",
      async prepare() {
        const s = await signIn(running);
        return {
          path: withId("/admin/v1/users/:id/sessions", s.user.id),
          async verify(t) {
            t.equal(await rowsOfAccount(s.user.id, ["Session"]), 0, "the user's sessions are gone");
            t.equal(await rowsOfAccount(s.user.id, ["Grant"]), 0, "their grants too: offline tokens outlive sessions, and sign-out-everywhere must end them (README)");
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id/sessions", unknownId()),
    },
    {
      key: "DELETE /admin/v1/users/:id/mfa",
      status: 204,
      audit: "mfa.reset",
      async prepare() {
        const s = await signIn(running);
        await turnOnTotp(running, s.user);
        return {
          path: withId("/admin/v1/users/:id/mfa", s.user.id),
          async verify(t) {
            t.equal(await running.db.prisma.userTotp.count({ where: { userId: s.user.id } }), 0, "the authenticator app is removed");
            t.equal(await running.db.prisma.recoveryCode.count({ where: { userId: s.user.id } }), 0, "and the recovery codes");
            t.equal(await rowsOfAccount(s.user.id, ["Session", "Grant"]), 0, "the user's sessions and grants are revoked");
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id/mfa", unknownId()),
    },
    {
      key: "DELETE /admin/v1/sessions/:id",
      status: 204,
      audit: "session.revoked",
      async prepare() {
        const s = await signIn(running);
        return {
          path: withId("/admin/v1/sessions/:id", s.sessionId),
          async verify(t) {
            t.equal(await prisma.oidcRecord.count({ where: { model: "Session", id: s.sessionId } }), 0, "the session is gone");
          },
        };
      },
      unknown: () => withId("/admin/v1/sessions/:id", unknownId()),
    },
    {
      key: "GET /admin/v1/users/:id/grants",
      status: 200,
      async prepare() {
        const s = await signIn(running);
        return {
          path: withId("/admin/v1/users/:id/grants", s.user.id),
          async verify(t, res) {
            t.equal(res.json.items.length, 1, "one grant");
            const [grant] = res.json.items;
            t.same(keys(grant), ["client_id", "created_at", "expires_at", "id", "scope"]);
            t.match(grant, { id: s.grantId, client_id: s.client.clientId });
            t.same(grant.scope.split(" ").sort(), ["email", "offline_access", "openid"], "with the scopes granted");
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id/grants", unknownId()),
    },
    {
      key: "DELETE /admin/v1/grants/:id",
      status: 204,
      audit: "grant.revoked",
      async prepare() {
        const s = await signIn(running);
        return {
          path: withId("/admin/v1/grants/:id", s.grantId),
          async verify(t) {
            t.equal(await prisma.oidcRecord.count({ where: { model: "Grant", id: s.grantId } }), 0, "the grant is gone");
            t.equal(await prisma.oidcRecord.count({ where: { grantId: s.grantId } }), 0, "with every token issued under it");
          },
        };
      },
      unknown: () => withId("/admin/v1/grants/:id", unknownId()),
    },
    {
      key: "DELETE /admin/v1/users/:id/grants",
      status: 204,
      audit: "grants.revoked",
      async prepare() {
        const s = await signIn(running);
        return {
          path: withId("/admin/v1/users/:id/grants", s.user.id),
          async verify(t) {
            t.equal(await rowsOfAccount(s.user.id, ["Grant", "AccessToken", "RefreshToken"]), 0, "the user's grants and tokens are gone");
            t.equal(await rowsOfAccount(s.user.id, ["Session"]), 1, "their session is not");
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id/grants", unknownId()),
      badInputs: [
        { label: "an empty client_id", query: "?client_id=" },
        { label: "an unknown parameter", query: "?client=abc" },
      ],
    },
    {
      key: "POST /admin/v1/revocations",
      status: 200,
      audit: "revocation.bulk",
      async prepare() {
        const s = await signIn(running);
        return {
          path: "/admin/v1/revocations",
          body: { user_id: s.user.id },
          async verify(t, res) {
            t.same(res.json, { revoked: { grants: 1, sessions: 1 } }, "reports what it removed");
            t.equal(await rowsOfAccount(s.user.id, ["Session", "Grant", "AccessToken", "RefreshToken"]), 0);
          },
        };
      },
      badInputs: [
        { label: "no filter", body: {} },
        { label: "an empty user_id", body: { user_id: "" } },
        { label: "issued_before that is not a date-time", body: { client_id: "abc", issued_before: "yesterday" } },
        { label: "issued_before alone", body: { issued_before: new Date().toISOString() } },
        { label: "an unknown property", body: { user_id: "abc", everything: true } },
        { label: "user_id of the wrong type (object)", body: { user_id: { id: "abc" } } },
        { label: "user_id of the wrong type (number)", body: { user_id: 12345 } },
      ],
    },
    {
      key: "GET /admin/v1/users/:id/passkeys",
      status: 200,
      async prepare() {
        const user = await newUser();
        const passkey = await addPasskey(running, user.id);
        return {
          path: withId("/admin/v1/users/:id/passkeys", user.id),
          async verify(t, res) {
            t.equal(res.json.items.length, 1, "one passkey");
            const [item] = res.json.items;
            t.same(keys(item), ["backed_up", "created_at", "device_type", "id", "last_used_at", "name", "transports"], "no key material");
            t.match(item, { id: passkey.id, name: passkey.name, last_used_at: null });
          },
        };
      },
      unknown: () => withId("/admin/v1/users/:id/passkeys", unknownId()),
    },
    {
      key: "DELETE /admin/v1/passkeys/:id",
      status: 204,
      audit: "passkey.removed",
      async prepare() {
        const user = await newUser();
        const passkey = await addPasskey(running, user.id);
        return {
          path: withId("/admin/v1/passkeys/:id", passkey.id),
          async verify(t) {
            t.equal(await prisma.passkey.count({ where: { id: passkey.id } }), 0, "the passkey is gone");
            t.equal(await prisma.user.count({ where: { id: user.id } }), 1, "its user is not");
          },
        };
      },
      unknown: () => withId("/admin/v1/passkeys/:id", unknownId()),
    },
    {
      key: "POST /admin/v1/clients",
      status: 201,
      audit: "client.created",
      async prepare() {
        const body = {
          client_name: "Billing",
          redirect_uris: ["https://billing.example/cb", "http://127.0.0.1:8080/cb"],
          post_logout_redirect_uris: ["https://billing.example/bye"],
          grant_types: ["authorization_code", "refresh_token"],
          scope: "openid email offline_access",
          first_party: true,
        };
        return {
          path: "/admin/v1/clients",
          body,
          async verify(t, res) {
            t.same(keys(res.json), ["client_id", "client_secret"]);
            t.match(res.json.client_secret, /^[A-Za-z0-9_-]{43}$/, "a 256-bit secret, base64url");
            const row = await prisma.client.findUnique({ where: { id: res.json.client_id } });
            t.match(row, { name: "Billing", firstParty: true });
            t.match(row?.metadata, { ...body, first_party: undefined, token_endpoint_auth_method: "client_secret_basic" }, "the metadata as given");
            t.notOk(row?.secretEncrypted?.includes(res.json.client_secret), "the secret is stored sealed, not in clear");
          },
        };
      },
      badInputs: [
        { label: "no client_name", body: { redirect_uris: ["https://a.example/cb"] } },
        { label: "an empty client_name", body: { client_name: "", redirect_uris: ["https://a.example/cb"] } },
        { label: "a blank client_name", body: { client_name: "   ", redirect_uris: ["https://a.example/cb"] }, code: "invalid_client_metadata" },
        { label: "an http redirect URI off loopback", body: { client_name: "A", redirect_uris: ["http://a.example/cb"] }, code: "invalid_redirect_uri" },
        { label: "a redirect URI with a fragment", body: { client_name: "A", redirect_uris: ["https://a.example/cb#x"] }, code: "invalid_redirect_uri" },
        { label: "a relative redirect URI", body: { client_name: "A", redirect_uris: ["/cb"] } },
        { label: "a javascript: redirect URI", body: { client_name: "A", redirect_uris: ["javascript:alert(1)"] } },
        { label: "a redirect URI with credentials", body: { client_name: "A", redirect_uris: ["https://u:p@a.example/cb"] }, code: "invalid_redirect_uri" },
        { label: "redirect_uris not an array", body: { client_name: "A", redirect_uris: { a: "https://a.example/cb" } } },
        { label: "the code grant without a redirect URI", body: { client_name: "A" }, code: "invalid_client_metadata" },
        { label: "grant type implicit", body: { client_name: "A", grant_types: ["implicit"], redirect_uris: ["https://a.example/cb"] } },
        { label: "grant type password", body: { client_name: "A", grant_types: ["password"], scope: "admin:read" } },
        { label: "no grant types", body: { client_name: "A", grant_types: [], scope: "admin:read" } },
        { label: "a repeated grant type", body: { client_name: "A", grant_types: ["client_credentials", "client_credentials"], scope: "admin:read" } },
        { label: "refresh_token without authorization_code", body: { client_name: "A", grant_types: ["refresh_token", "client_credentials"], scope: "admin:read" }, code: "invalid_client_metadata" },
        { label: "a public client with client_credentials", body: { client_name: "A", grant_types: ["client_credentials"], scope: "admin:read", token_endpoint_auth_method: "none" }, code: "invalid_client_metadata" },
        { label: "an unsupported auth method", body: { client_name: "A", grant_types: ["client_credentials"], scope: "admin:read", token_endpoint_auth_method: "client_secret_jwt" } },
        { label: "private_key_jwt without jwks_uri", body: { client_name: "A", grant_types: ["client_credentials"], scope: "admin:read", token_endpoint_auth_method: "private_key_jwt" }, code: "invalid_client_metadata" },
        { label: "an unknown scope", body: { client_name: "A", grant_types: ["client_credentials"], scope: "admin:read superuser" }, code: "invalid_client_metadata" },
        { label: "a client_secret chosen by the caller", body: { client_name: "A", grant_types: ["client_credentials"], scope: "admin:read", client_secret: "mine" } },
        { label: "a client_id chosen by the caller", body: { client_name: "A", grant_types: ["client_credentials"], scope: "admin:read", client_id: "mine" } },
        { label: "first_party of the wrong type (string)", body: { client_name: "A", grant_types: ["client_credentials"], scope: "admin:read", first_party: "yes" } },
        { label: "first_party of the wrong type (number)", body: { client_name: "A", grant_types: ["client_credentials"], scope: "admin:read", first_party: 1 } },
        { label: "client_name of the wrong type (number)", body: { client_name: 42, grant_types: ["client_credentials"], scope: "admin:read" } },
      ],
    },
    {
      key: "GET /admin/v1/clients",
      status: 200,
      async prepare() {
        const client = await newClient();
        return {
          path: "/admin/v1/clients",
          async verify(t, res) {
            t.same(keys(res.json), ["items", "next_cursor"]);
            t.ok(res.json.items.every((c: object) => keys(c).join() === clientFields.join()), "every item is a client, without its secret");
            t.match(res.json.items.find((c: { client_id: string }) => c.client_id === client.client_id), { client_name: "Fixture app" });
            t.notMatch(res.text, client.client_secret!, "no secret anywhere in the list");
          },
        };
      },
      badInputs: [
        { label: "limit=0", query: "?limit=0" },
        { label: "an unknown parameter", query: "?email=a@example.test" },
      ],
    },
    {
      key: "GET /admin/v1/clients/:id",
      status: 200,
      async prepare() {
        const client = await newClient();
        return {
          path: withId("/admin/v1/clients/:id", client.client_id),
          async verify(t, res) {
            t.same(keys(res.json), clientFields, "the client's fields, without its secret");
            t.match(res.json, {
              client_id: client.client_id,
              client_name: "Fixture app",
              redirect_uris: ["https://fixture.example/cb"],
              post_logout_redirect_uris: [],
              grant_types: ["authorization_code", "refresh_token"],
              scope: "openid email",
              token_endpoint_auth_method: "client_secret_basic",
              first_party: false,
              backchannel_logout_uri: null,
              jwks_uri: null,
            });
            t.notMatch(res.text, client.client_secret!, "no secret");
          },
        };
      },
      unknown: () => withId("/admin/v1/clients/:id", unknownId()),
    },
    {
      key: "PATCH /admin/v1/clients/:id",
      status: 200,
      audit: "client.updated",
      async prepare() {
        const client = await newClient();
        const before = await prisma.client.findUnique({ where: { id: client.client_id } });
        return {
          path: withId("/admin/v1/clients/:id", client.client_id),
          body: { client_name: "Renamed app", redirect_uris: ["https://renamed.example/cb"] },
          async verify(t, res) {
            t.match(res.json, { client_id: client.client_id, client_name: "Renamed app", redirect_uris: ["https://renamed.example/cb"], scope: "openid email" });
            const row = await prisma.client.findUnique({ where: { id: client.client_id } });
            t.match(row?.metadata, { client_name: "Renamed app", redirect_uris: ["https://renamed.example/cb"], scope: "openid email", grant_types: ["authorization_code", "refresh_token"] }, "stored; fields left out are kept");
            t.equal(row?.secretEncrypted, before?.secretEncrypted, "the secret is unchanged");
          },
        };
      },
      unknown: () => withId("/admin/v1/clients/:id", unknownId()),
      badInputs: [
        { label: "an empty body", body: {} },
        { label: "a bad redirect URI", body: { redirect_uris: ["http://evil.example/cb"] }, code: "invalid_redirect_uri" },
        { label: "no redirect URI for the code grant", body: { redirect_uris: [] }, code: "invalid_client_metadata" },
        { label: "a grant type not allowed", body: { grant_types: ["implicit"] } },
        { label: "a client_secret", body: { client_secret: "mine" } },
        { label: "the auth method (not changeable)", body: { token_endpoint_auth_method: "none" } },
        { label: "an unknown scope", body: { scope: "openid root" }, code: "invalid_client_metadata" },
        { label: "first_party of the wrong type (number)", body: { first_party: 0 } },
      ],
    },
    {
      key: "DELETE /admin/v1/clients/:id",
      status: 204,
      audit: "client.deleted",
      async prepare() {
        const s = await signIn(running);
        return {
          path: withId("/admin/v1/clients/:id", s.client.clientId),
          async verify(t) {
            t.equal(await prisma.client.count({ where: { id: s.client.clientId } }), 0, "the client is gone");
            t.equal(await prisma.oidcRecord.count({ where: { clientId: s.client.clientId, model: { not: "Session" } } }), 0, "with its grants and tokens");
          },
        };
      },
      unknown: () => withId("/admin/v1/clients/:id", unknownId()),
    },
    {
      key: "POST /admin/v1/resources",
      status: 201,
      audit: "resource_server.created",
      async prepare() {
        const tag = randomBytes(4).toString("hex");
        const body = {
          identifier: `https://orders-${tag}.example/api`,
          name: "Orders",
          scopes: [{ name: `read:orders-${tag}`, description: "see your orders" }, { name: `write:orders-${tag}` }],
          token_format: "jwt",
          signing_alg: "ES256",
          access_token_ttl: 600,
        };
        return {
          path: "/admin/v1/resources",
          body,
          async verify(t, res) {
            t.same(keys(res.json), resourceFields);
            t.match(res.json, { ...body, scopes: [{ name: `read:orders-${tag}`, description: "see your orders" }, { name: `write:orders-${tag}`, description: "" }], introspection_clients: [], built_in: false });
            t.match(await prisma.resourceServer.findUnique({ where: { id: res.json.id } }), { identifier: body.identifier, tokenFormat: "jwt", signingAlg: "ES256", accessTokenTtl: 600 });
          },
        };
      },
      badInputs: [
        { label: "no identifier", body: { scopes: [{ name: "read:x" }] } },
        { label: "a relative identifier", body: { identifier: "/api", scopes: [{ name: "read:x" }] }, code: "invalid_request" },
        { label: "an identifier with a fragment", body: { identifier: "https://a.example/api#x", scopes: [{ name: "read:x" }] }, code: "invalid_request" },
        { label: "the admin API's identifier", body: { identifier: `${running.config.issuer}/admin/v1`, scopes: [{ name: "read:x" }] }, status: 409, code: "conflict" },
        { label: "no scopes", body: { identifier: "https://a.example/api", scopes: [] } },
        { label: "a built-in scope", body: { identifier: "https://a.example/api", scopes: [{ name: "openid" }] }, code: "invalid_request" },
        { label: "a scope name with a space", body: { identifier: "https://a.example/api", scopes: [{ name: "read x" }] }, code: "invalid_request" },
        { label: "an unknown token format", body: { identifier: "https://a.example/api", scopes: [{ name: "read:x" }], token_format: "paseto" } },
        { label: "an unsupported signing alg", body: { identifier: "https://a.example/api", scopes: [{ name: "read:x" }], signing_alg: "HS256" } },
        { label: "a lifetime of 0", body: { identifier: "https://a.example/api", scopes: [{ name: "read:x" }], access_token_ttl: 0 } },
        { label: "an unknown introspection client", body: { identifier: "https://a.example/api", scopes: [{ name: "read:x" }], introspection_clients: ["nobody"] }, code: "invalid_request" },
        { label: "an unknown field", body: { identifier: "https://a.example/api", scopes: [{ name: "read:x" }], audience: "x" } },
      ],
    },
    {
      key: "GET /admin/v1/resources",
      status: 200,
      async prepare() {
        const rs = await newResource();
        return {
          path: "/admin/v1/resources",
          async verify(t, res) {
            t.same(keys(res.json), ["items", "next_cursor"]);
            t.match(res.json.items[0], { id: "admin", identifier: `${running.config.issuer}/admin/v1`, built_in: true, token_format: "opaque" }, "the admin API first, built in");
            t.match(res.json.items.find((r: { id: string }) => r.id === rs.id), { identifier: rs.identifier });
          },
        };
      },
      badInputs: [{ label: "limit=0", query: "?limit=0" }],
    },
    {
      key: "GET /admin/v1/resources/:id",
      status: 200,
      async prepare() {
        const rs = await newResource();
        return {
          path: withId("/admin/v1/resources/:id", rs.id),
          async verify(t, res) {
            t.same(keys(res.json), resourceFields);
            t.match(res.json, { id: rs.id, identifier: rs.identifier, token_format: "opaque", signing_alg: "RS256", access_token_ttl: running.config.accessTokenTtl });
          },
        };
      },
      unknown: () => withId("/admin/v1/resources/:id", unknownId()),
    },
    {
      key: "PATCH /admin/v1/resources/:id",
      status: 200,
      audit: "resource_server.updated",
      async prepare() {
        const rs = await newResource();
        return {
          path: withId("/admin/v1/resources/:id", rs.id),
          body: { name: "Renamed API", token_format: "jwt" },
          async verify(t, res) {
            t.match(res.json, { id: rs.id, identifier: rs.identifier, name: "Renamed API", token_format: "jwt", scopes: rs.scopes });
          },
        };
      },
      unknown: () => withId("/admin/v1/resources/:id", unknownId()),
      badInputs: [
        { label: "an empty body", body: {} },
        { label: "the identifier (not changeable)", body: { identifier: "https://b.example/api" } },
        { label: "a built-in scope", body: { scopes: [{ name: "admin:write" }] }, code: "invalid_request" },
      ],
    },
    {
      key: "DELETE /admin/v1/resources/:id",
      status: 204,
      audit: "resource_server.deleted",
      async prepare() {
        const rs = await newResource();
        return {
          path: withId("/admin/v1/resources/:id", rs.id),
          async verify(t) {
            t.equal(await prisma.resourceServer.count({ where: { id: rs.id } }), 0, "the resource server is gone");
          },
        };
      },
      unknown: () => withId("/admin/v1/resources/:id", unknownId()),
    },
    {
      key: "GET /admin/v1/audit",
      status: 200,
      async prepare() {
        return {
          path: "/admin/v1/audit?limit=5",
          async verify(t, res) {
            t.same(keys(res.json), ["items", "next_cursor"]);
            t.equal(res.json.items.length, 5, "a page of 5");
            const seqs = res.json.items.map((e: { seq: number }) => e.seq);
            t.same(seqs, [...seqs].sort((a: number, b: number) => b - a), "newest first");
            t.equal(seqs[0], await lastAuditSeq(running.db), "starting with the latest event");
            t.type(res.json.next_cursor, "string", "with a cursor to the next page");
          },
        };
      },
      badInputs: [
        { label: "limit=-1", query: "?limit=-1" },
        { label: "a cursor that is not a sequence number", query: `?cursor=${Buffer.from("abc").toString("base64url")}` },
        { label: "a type too long", query: `?type=${"t".repeat(65)}` },
        { label: "an unknown parameter", query: "?actor=x" },
      ],
    },
  ];
}

/** Every check of one route: refusals first (against intact fixtures), then the success. */
async function checkRoute(t: Test, h: Harness, rc: RouteCase) {
  const { running, admins } = h;
  const [method, template] = rc.key.split(" ") as [string, string];
  const required = adminRouteScopes[rc.key]!;
  const rightToken = { "admin:read": admins.read, "admin:revoke": admins.revoke, "admin:write": admins.write }[required];
  const prepared = await rc.prepare();
  const send = (options: CallOptions, path = prepared.path) =>
    adminCall(running, method, path, { ...(prepared.body !== undefined && { body: prepared.body }), ...options });

  await refused(t, running, "401 without a token", () => send({ token: null }), { status: 401, code: "unauthorized" });
  await refused(t, running, "401 with a garbage token", () => send({ token: "garbage-token-value" }), { status: 401, code: "unauthorized" });
  await refused(t, running, "401 with HTTP Basic instead of a Bearer token", () => send({ authorization: `Basic ${Buffer.from(`${admins.all.clientId}:${admins.all.clientSecret}`).toString("base64")}` }), {
    status: 401,
    code: "unauthorized",
  });
  for (const [name, admin] of Object.entries(admins)) {
    if (scopeAllows(admin.scope, required)) continue;
    await refused(t, running, `403 with a token for "${admin.scope}" (${name})`, () => send({ token: admin.token }), { status: 403, code: "forbidden" });
  }
  if (rc.unknown) {
    await refused(t, running, "404 for an unknown id", () => send({ token: rightToken.token }, rc.unknown!()), { status: 404, code: "not_found" });
    await t.test("an id longer than 128 characters is refused", async (t) => {
      const before = await tableCounts(running.db);
      const res = await send({ token: rightToken.token }, template.replace(":id", "x".repeat(129)));
      t.ok([400, 404].includes(res.status), `400 or 404 (got ${res.status})`);
      t.match(res.headers.get("content-type"), /^application\/json/, "a JSON error");
      t.same(await tableCounts(running.db), before, "nothing written");
    });
  }
  if (prepared.body !== undefined) {
    await refused(t, running, "400 for malformed JSON", () => send({ token: rightToken.token, rawBody: '{"email": "a@example.test",' }), { status: 400, code: "invalid_request" });
    await refused(t, running, "400 for an empty JSON body", () => send({ token: rightToken.token, rawBody: "" }), { status: 400 });
    await refused(t, running, "413 for a body over 64 KiB", () => send({ token: rightToken.token, rawBody: oversizedJson() }), { status: 413, code: "payload_too_large" });
    await refused(t, running, "401 (not 413) for an oversized body without a token: nothing is read before authentication", () => send({ token: null, rawBody: oversizedJson() }), {
      status: 401,
    });
  }
  for (const bad of rc.badInputs ?? []) {
    const path = bad.query ? `${prepared.path.split("?")[0]}${bad.query}` : prepared.path;
    const options: CallOptions = { token: rightToken.token, ...(bad.body !== undefined && { body: bad.body }) };
    await refused(t, running, `${bad.status ?? 400} for ${bad.label}`, () => send(options, path), {
      status: bad.status ?? 400,
      code: bad.code ?? /^invalid_/,
    });
  }

  await t.test(`${rc.status} with a token for ${required}`, async (t) => {
    const seq = await lastAuditSeq(running.db);
    const before = method === "GET" ? await tableCounts(running.db) : undefined;
    const res = await send({ token: rightToken.token });
    t.equal(res.status, rc.status, `status ${rc.status} (got ${res.status}: ${res.text.slice(0, 300)})`);
    if (res.status === 200 || res.status === 201) t.match(res.headers.get("content-type"), /^application\/json/);
    await prepared.verify(t, res);
    // A change that emails its user (a password set) is followed by the
    // worker's own email.sent event: let it finish, and leave it out here
    // (test/integration/email.test.ts covers it).
    await settleOutbox(running.app);
    const events = (await auditEventsAfter(running.db, seq)).filter((e) => !e.type.startsWith("email."));
    if (before) {
      t.same(await tableCounts(running.db), before, "a read writes nothing");
      t.same(events, [], "and audits nothing");
    }
    if (rc.audit) {
      t.match(
        events.map((e) => ({ type: e.type, actorType: e.actorType, actorId: e.actorId })),
        [{ type: rc.audit, actorType: "client", actorId: rightToken.clientId }],
        `one ${rc.audit} event by the admin client`,
      );
      t.equal(events.length, 1, "exactly one event");
    }
  });

  if (required === "admin:revoke") {
    await t.test(`${rc.status} with a token for admin:write too (it also revokes)`, async (t) => {
      const again = await rc.prepare();
      const res = await adminCall(running, method, again.path, { token: admins.write.token, ...(again.body !== undefined && { body: again.body }) });
      t.equal(res.status, rc.status, res.text.slice(0, 300));
      await again.verify(t, res);
    });
  }
}

async function adminApiSuite(t: Test, provider: DatabaseProvider) {
  const running = await startApp(t, { provider });
  const admins = {
    read: await makeAdminClient(running, "admin:read"),
    revoke: await makeAdminClient(running, "admin:revoke"),
    write: await makeAdminClient(running, "admin:write"),
    readRevoke: await makeAdminClient(running, "admin:read admin:revoke"),
    all: await makeAdminClient(running, "admin:read admin:revoke admin:write"),
  };
  const api = new AdminApi(running, admins.all.token);
  const h: Harness = { running, admins };

  t.test("every route of the scope table is covered here", async (t) => {
    t.same(
      routeCases(h)
        .map((rc) => rc.key)
        .sort(),
      Object.keys(adminRouteScopes).sort(),
    );
  });

  for (const rc of routeCases(h)) {
    t.test(rc.key, (t) => checkRoute(t, h, rc));
  }

  t.test("tokens that are not admin API tokens are refused with 401", async (t) => {
    const user = await signIn(running);
    await refused(t, running, "a user's access token from the code flow", () => adminCall(running, "GET", "/admin/v1/users", { token: user.accessToken }), { status: 401 });
    await refused(t, running, "a user's refresh token", () => adminCall(running, "GET", "/admin/v1/users", { token: user.refreshToken! }), { status: 401 });
    const created = await createClient(running.db, running.ring, { name: "No admin scope asked", grantTypes: ["client_credentials"], scope: "admin:read" });
    const issued = await clientCredentialsToken(running, created.client_id, created.client_secret!, "");
    t.equal(issued.status, 200, "a token without scope is issued");
    const token = String(issued.json.access_token);
    await refused(t, running, "a client_credentials token issued without an admin scope (not for the admin API)", () => adminCall(running, "GET", "/admin/v1/users", { token }), {
      status: 401,
    });
    await refused(t, running, "an empty Bearer token", () => adminCall(running, "GET", "/admin/v1/users", { authorization: "Bearer " }), { status: 401 });
  });

  t.test("the admin API is a built-in resource server: shown, never changed or deleted", async (t) => {
    const shown = await api.get("/admin/v1/resources/admin");
    t.equal(shown.status, 200);
    t.match(shown.json, { id: "admin", identifier: `${running.config.issuer}/admin/v1`, built_in: true, scopes: [{ name: "admin:read" }, { name: "admin:revoke" }, { name: "admin:write" }] });
    await refused(t, running, "PATCH is refused with 403", () => adminCall(running, "PATCH", "/admin/v1/resources/admin", { token: admins.write.token, body: { name: "Mine" } }), {
      status: 403,
      code: "forbidden",
    });
    await refused(t, running, "DELETE is refused with 403", () => adminCall(running, "DELETE", "/admin/v1/resources/admin", { token: admins.write.token }), {
      status: 403,
      code: "forbidden",
    });
    t.equal((await api.get("/admin/v1/users?limit=1")).status, 200, "admin tokens still work");
  });

  t.test("a 401 names the Bearer scheme in WWW-Authenticate (RFC 6750 section 3)", async (t) => {
    for (const token of [null, "garbage-token-value"]) {
      const res = await adminCall(running, "GET", "/admin/v1/users", { token });
      t.equal(res.status, 401);
      t.match(res.headers.get("www-authenticate"), /^Bearer\b/, `${token ? "a bad token" : "no token"}: WWW-Authenticate: Bearer ...`);
    }
  });

  t.test("the response that shows a new client's secret is not cached", async (t) => {
    const res = await api.post("/admin/v1/clients", { client_name: "Secret shown once", grant_types: ["client_credentials"], scope: "admin:read" });
    t.equal(res.status, 201);
    t.match(res.headers.get("cache-control"), /no-store/, "Cache-Control: no-store (the README: no-store wherever a secret is shown)");
  });

  t.test("the Bearer scheme is matched case-insensitively (RFC 7235 section 2.1)", async (t) => {
    const res = await adminCall(running, "GET", "/admin/v1/users", { authorization: `bearer ${admins.read.token}` });
    t.equal(res.status, 200, "bearer <token> is accepted");
  });

  t.test("unknown paths and methods under /admin/v1 answer a JSON 404", async (t) => {
    for (const [method, path] of [
      ["GET", "/admin/v1/nothing-here"],
      ["PUT", "/admin/v1/users"],
    ] as const) {
      const res = await api.call(method, path);
      t.equal(res.status, 404, `${method} ${path}: 404`);
      t.match(res.headers.get("content-type"), /^application\/json/, `${method} ${path}: JSON {error, error_description} (README)`);
    }
  });

  t.test("cursor pagination walks every user exactly once", async (t) => {
    for (let i = 0; i < 7; i++) await createUser(running.db, running.config.argon2, { email: uniqueEmail("page") });
    const all = (await running.db.prisma.user.findMany({ select: { id: true } })).map((u) => u.id).sort();
    t.ok(all.length > 3 * 2, `more users (${all.length}) than two pages of 3`);
    const walked = await api.all("/admin/v1/users", 3);
    t.ok(walked.statuses.every((s) => s === 200), "every page answers 200");
    const ids = walked.items.map((u) => String(u.id));
    t.equal(new Set(ids).size, ids.length, "no user twice");
    t.same([...ids].sort(), all, "every user once");
    t.same(ids, [...ids].sort(), "in a stable (id) order");
    t.equal(walked.pages.length, Math.ceil(all.length / 3), "ceil(n / limit) pages");
    t.ok(walked.pages.slice(0, -1).every((n) => n === 3), "every page but the last is full");
    const one = await api.get("/admin/v1/users?limit=200");
    t.equal(one.json.items.length, all.length, "limit=200 gets them all at once");
    t.equal(one.json.next_cursor, null, "and no next_cursor");
  });

  t.test("cursor pagination walks every client exactly once", async (t) => {
    for (let i = 0; i < 7; i++) await createClient(running.db, running.ring, { name: `Paged ${i}`, grantTypes: ["client_credentials"], scope: "admin:read" });
    const all = (await running.db.prisma.client.findMany({ select: { id: true } })).map((c) => c.id).sort();
    const walked = await api.all("/admin/v1/clients", 4);
    const ids = walked.items.map((c) => String(c.client_id));
    t.equal(new Set(ids).size, ids.length, "no client twice");
    t.same([...ids].sort(), all, "every client once");
    t.equal(walked.pages.length, Math.ceil(all.length / 4));
    t.ok(walked.items.every((c) => !("client_secret" in c)), "never a secret");
  });

  t.test("GET /admin/v1/users?email= finds one user, case-insensitively and exactly", async (t) => {
    const email = uniqueEmail("Mixed.Case");
    const user = await createUser(running.db, running.config.argon2, { email: email.toUpperCase() });
    t.equal(user.email, email.toLowerCase(), "stored lower-cased");
    for (const query of [email.toUpperCase(), email.toLowerCase(), email.replace(/^m/i, "M")]) {
      const res = await api.get(`/admin/v1/users?email=${encodeURIComponent(query)}`);
      t.equal(res.status, 200);
      t.same(
        res.json.items.map((u: { id: string }) => u.id),
        [user.id],
        `?email=${query}`,
      );
    }
    for (const query of ["nobody@example.test", email.split("@")[0]!, email.slice(1)]) {
      const res = await api.get(`/admin/v1/users?email=${encodeURIComponent(query)}`);
      t.same(res.json, { items: [], next_cursor: null }, `?email=${query}: no match (not a substring search)`);
    }
  });

  t.test("a client created through the API is stored as `gatehouse clients create` stores it", async (t) => {
    const env = { DATABASE_URL: running.config.databaseUrl, KEYS_DIR: running.config.keysDir };
    const pairs: { label: string; cli: string[]; api: Record<string, unknown> }[] = [
      {
        label: "confidential, first-party",
        cli: [
          "--name", "Mirror app",
          "--redirect-uri", "https://mirror.example/cb",
          "--redirect-uri", "http://127.0.0.1:8080/cb",
          "--post-logout-redirect-uri", "https://mirror.example/bye",
          "--grant-types", "authorization_code,refresh_token,client_credentials",
          "--scope", "openid profile email offline_access",
          "--first-party",
        ],
        api: {
          client_name: "Mirror app",
          redirect_uris: ["https://mirror.example/cb", "http://127.0.0.1:8080/cb"],
          post_logout_redirect_uris: ["https://mirror.example/bye"],
          grant_types: ["authorization_code", "refresh_token", "client_credentials"],
          scope: "openid profile email offline_access",
          first_party: true,
        },
      },
      {
        label: "public, defaults",
        cli: ["--name", "Mirror SPA", "--redirect-uri", "https://spa.example/cb", "--public"],
        api: { client_name: "Mirror SPA", redirect_uris: ["https://spa.example/cb"], token_endpoint_auth_method: "none" },
      },
      {
        label: "a service (client_credentials only)",
        cli: ["--name", "Mirror worker", "--grant-types", "client_credentials", "--scope", "admin:read"],
        api: { client_name: "Mirror worker", grant_types: ["client_credentials"], scope: "admin:read" },
      },
    ];
    for (const pair of pairs) {
      const cli = await runCli(["clients", "create", ...pair.cli], env);
      t.equal(cli.code, 0, `${pair.label}: the CLI succeeds ${cli.stderr}`);
      const fromCli = JSON.parse(cli.stdout) as { client_id: string; client_secret?: string };
      const res = await api.post("/admin/v1/clients", pair.api);
      t.equal(res.status, 201, `${pair.label}: the API succeeds ${res.text}`);
      t.same(keys(res.json), keys(fromCli), `${pair.label}: the same answer shape (${keys(fromCli).join(", ")})`);
      const [a, b] = await Promise.all([
        running.db.prisma.client.findUnique({ where: { id: fromCli.client_id } }),
        running.db.prisma.client.findUnique({ where: { id: res.json.client_id } }),
      ]);
      t.same(b?.metadata, a?.metadata, `${pair.label}: the same stored metadata`);
      t.equal(b?.name, a?.name, `${pair.label}: the same name`);
      t.equal(b?.firstParty, a?.firstParty, `${pair.label}: the same first-party flag`);
      t.equal(b?.secretEncrypted === null, a?.secretEncrypted === null, `${pair.label}: a secret in both or neither`);
      const [viewA, viewB] = await Promise.all([api.get(`/admin/v1/clients/${fromCli.client_id}`), api.get(`/admin/v1/clients/${res.json.client_id}`)]);
      const strip = ({ client_id: _id, created_at: _c, updated_at: _u, ...rest }: Record<string, unknown>) => rest;
      t.same(strip(viewB.json), strip(viewA.json), `${pair.label}: the same view through GET /admin/v1/clients/{id}`);
    }
  });

  t.test("a client_credentials client without a scope: the CLI and the API agree, and it gets no scope", async (t) => {
    const env = { DATABASE_URL: running.config.databaseUrl, KEYS_DIR: running.config.keysDir };
    const cli = await runCli(["clients", "create", "--name", "Scopeless worker", "--grant-types", "client_credentials"], env);
    t.equal(cli.code, 0, `the CLI creates it ${cli.stderr}`);
    const fromCli = JSON.parse(cli.stdout) as { client_id: string; client_secret: string };
    const res = await api.post("/admin/v1/clients", { client_name: "Scopeless worker", grant_types: ["client_credentials"] });
    t.equal(res.status, 201, `the API creates it ${res.text}`);
    t.equal((await api.get(`/admin/v1/clients/${fromCli.client_id}`)).json.scope, "", "no scope");
    t.equal((await api.get(`/admin/v1/clients/${res.json.client_id}`)).json.scope, "", "no scope");
    // Its token has no scope and no audience.
    const token = await fetch(new URL("/token", running.url), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${Buffer.from(`${fromCli.client_id}:${fromCli.client_secret}`).toString("base64")}` },
      body: "grant_type=client_credentials",
    });
    const body = (await token.json()) as { access_token?: string; scope?: string };
    t.equal(token.status, 200, JSON.stringify(body));
    t.equal(body.scope, undefined, "the token has no scope");
    const cliNoCode = await runCli(["clients", "create", "--name", "Scopeless web", "--redirect-uri", "https://app.example.com/cb", "--scope", ""], env);
    t.equal(cliNoCode.code, 1, "a sign-in client still needs a scope");
    t.match(cliNoCode.stderr, /scope must name at least one scope/);
  });

  t.test("a native app's private-use redirect URI (RFC 8252 section 7.1): the CLI and the API agree, and the client works", async (t) => {
    const env = { DATABASE_URL: running.config.databaseUrl, KEYS_DIR: running.config.keysDir };
    const cli = await runCli(["clients", "create", "--name", "Native app", "--public", "--redirect-uri", "com.example.app:/cb"], env);
    t.equal(cli.code, 0, "the CLI creates it");
    const fromCli = JSON.parse(cli.stdout) as { client_id: string };
    const authorize = new URL("/auth", running.url);
    authorize.search = new URLSearchParams({
      client_id: fromCli.client_id,
      redirect_uri: "com.example.app:/cb",
      response_type: "code",
      scope: "openid",
      code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
      code_challenge_method: "S256",
    }).toString();
    const res = await fetch(authorize, { redirect: "manual" });
    await res.text();
    t.equal(res.status, 303, `the CLI's client can start a sign-in (got ${res.status})`);
    const created = await api.post("/admin/v1/clients", { client_name: "Native app", redirect_uris: ["com.example.app:/cb"], token_endpoint_auth_method: "none" });
    t.equal(created.status, 201, `the API accepts the same input as the CLI (got ${created.status} ${created.text})`);
  });

  t.test("a deleted client's admin token stops working", async (t) => {
    const doomed = await makeAdminClient(running, "admin:read admin:write", "Doomed admin");
    t.equal((await adminCall(running, "GET", "/admin/v1/users", { token: doomed.token })).status, 200, "works before");
    const res = await api.delete(`/admin/v1/clients/${doomed.clientId}`);
    t.equal(res.status, 204);
    await refused(t, running, "401 after its client is deleted", () => adminCall(running, "GET", "/admin/v1/users", { token: doomed.token }), { status: 401, code: "unauthorized" });
    await refused(t, running, "for writes too", () => adminCall(running, "POST", "/admin/v1/users", { token: doomed.token, body: { email: uniqueEmail() } }), { status: 401 });
    const again = await clientCredentialsToken(running, doomed.clientId, doomed.clientSecret, doomed.scope);
    t.equal(again.status, 401, "and it cannot get a new token");
    t.equal(again.json.error, "invalid_client");
  });

  t.test("the OpenAPI document", async (t) => {
    const res = await adminCall(running, "GET", "/admin/v1/openapi.json");
    t.equal(res.status, 200, "is public (no token)");
    t.equal((await adminCall(running, "GET", "/admin/v1/openapi.json", { token: "garbage" })).status, 200, "and a bad token does not matter");
    const doc = res.json;
    const result = await new Validator().validate(doc);
    t.ok(result.valid, `validates as OpenAPI ${doc.openapi}: ${JSON.stringify(result.errors ?? []).slice(0, 1000)}`);
    t.match(doc.openapi, /^3\./, "OpenAPI 3");
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
      Object.keys(item)
        .filter((m) => ["get", "post", "put", "patch", "delete"].includes(m))
        .map((m) => `${m.toUpperCase()} ${path}`),
    );
    const expected = Object.keys(adminRouteScopes).map((k) => k.replace(/:(\w+)/g, "{$1}"));
    t.same(documented.sort(), expected.sort(), "lists every route of the table, paths in {id} form, and nothing else");
    t.same(doc.security, [{ bearer: [] }], "every operation needs the bearer token");
    t.equal(doc.servers?.[0]?.url, running.url, "served at the issuer");
    const createUserSchema = doc.paths["/admin/v1/users"].post.requestBody.content["application/json"].schema;
    t.same(Object.keys(createUserSchema.properties).sort(), ["email", "email_verified", "name", "password", "role"], "request schemas are the validating ones");
    t.equal(createUserSchema.additionalProperties, false);
    for (const key of Object.keys(adminRouteScopes)) {
      const [method, url] = key.split(" ") as [string, string];
      t.ok(running.app.hasRoute({ method: method as "GET", url }), `the app serves ${key}`);
    }
  });
}

for (const provider of providers(t)) {
  t.test(`admin API on ${provider}`, (t) => adminApiSuite(t, provider));
}
