/**
 * Resource servers (RFC 8707 resource indicators, RFC 9068 JWT access
 * tokens) against a real server on 127.0.0.1, with openid-client as the
 * client and jose as the API that checks the tokens (docs/resource-servers.md):
 * audience-bound tokens for the authorization code flow and
 * client_credentials, JWT ones verified against the JWKS, opaque ones through
 * introspection, the refusals, introspection_clients, revocation by deleting
 * a resource server, and DPoP binding. On every database provider.
 */
import t, { type Test } from "tap";
import { randomBytes } from "node:crypto";
import * as oidc from "openid-client";
import { calculateJwkThumbprint, createRemoteJWKSet, decodeProtectedHeader, exportJWK, jwtVerify } from "jose";
import type { DatabaseProvider } from "../../src/db/database.ts";
import { createClient } from "../../src/services/clients.ts";
import { createResourceServer, type ResourceServerInput } from "../../src/services/resource-servers.ts";
import { systemActor } from "../../src/services/actor.ts";
import { providers } from "../helpers/databases.ts";
import { Browser, authorizationUrl, isConsentPage, last, makeUser, redeem, redirectUri, signInAndConsent, startApp, type RunningApp, type TestClient } from "../helpers/http-flow.ts";
import { AdminApi, makeAdminClient } from "../helpers/admin.ts";

const tag = () => randomBytes(4).toString("hex");

async function suite(t: Test, provider: DatabaseProvider) {
  const running = await startApp(t, { provider, env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
  const api = new AdminApi(running, (await makeAdminClient(running, "admin:read admin:write")).token);
  const discovery = (await (await fetch(`${running.url}/.well-known/openid-configuration`)).json()) as Record<string, string>;
  const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri!));

  /** A resource server with fresh scope names `read:<tag>` and `write:<tag>`. */
  async function newResource(input: Partial<ResourceServerInput> = {}) {
    const id = tag();
    const rs = await createResourceServer(
      running.db,
      running.config,
      { identifier: `https://api-${id}.example/`, scopes: [{ name: `read:${id}`, description: `see your ${id} records` }, `write:${id}`], ...input },
      systemActor,
    );
    return { ...rs, read: `read:${id}`, write: `write:${id}` };
  }

  /** A confidential client with openid-client's configuration. */
  async function newClient(input: { scope: string; grantTypes?: string[]; firstParty?: boolean }): Promise<TestClient> {
    const usesCode = !input.grantTypes || input.grantTypes.includes("authorization_code");
    const created = await createClient(running.db, running.ring, {
      name: `RS client ${tag()}`,
      ...(usesCode && { redirectUris: [redirectUri] }),
      grantTypes: input.grantTypes,
      scope: input.scope,
      firstParty: input.firstParty ?? true,
    });
    const config = await oidc.discovery(new URL(running.url), created.client_id, created.client_secret!, oidc.ClientSecretBasic(created.client_secret!), {
      execute: [oidc.allowInsecureRequests],
    });
    return { clientId: created.client_id, clientSecret: created.client_secret!, config };
  }

  async function introspect(client: Pick<TestClient, "clientId" | "clientSecret">, token: string): Promise<Record<string, unknown>> {
    const res = await fetch(discovery.introspection_endpoint!, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")}` },
      body: new URLSearchParams({ token }),
    });
    return (await res.json()) as Record<string, unknown>;
  }

  async function tokenRequest(client: Pick<TestClient, "clientId" | "clientSecret">, form: Record<string, string>) {
    const res = await fetch(discovery.token_endpoint!, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")}` },
      body: new URLSearchParams(form),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  t.test("authorization code flow for a jwt resource: an RFC 9068 token that jose verifies against the JWKS", async (t) => {
    const rs = await newResource({ tokenFormat: "jwt", accessTokenTtl: 300 });
    const client = await newClient({ scope: `openid email ${rs.read} ${rs.write}` });
    const user = await makeUser(running);
    // No resource parameter: the client's API scopes belong to one API.
    const pending = await authorizationUrl(client, { scope: `openid ${rs.read}` });
    const tokens = await redeem(client, await signInAndConsent(new Browser(running.url), pending, user), pending);
    t.equal(tokens.claims()?.sub, user.id, "an ID token as usual");
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, { issuer: running.config.issuer, audience: rs.identifier, typ: "at+jwt", algorithms: ["RS256"] });
    t.equal(protectedHeader.typ, "at+jwt");
    t.match(payload, { iss: running.config.issuer, sub: user.id, aud: rs.identifier, client_id: client.clientId, scope: rs.read, jti: String, iat: Number, exp: Number });
    t.equal(payload.exp! - payload.iat!, 300, "the resource server's access_token_ttl");
    t.equal(tokens.expires_in, 300);
  });

  t.test("client_credentials for a jwt resource signed with ES256: sub and client_id are the client", async (t) => {
    const rs = await newResource({ tokenFormat: "jwt", signingAlg: "ES256" });
    const client = await newClient({ scope: rs.read, grantTypes: ["client_credentials"] });
    const tokens = await oidc.clientCredentialsGrant(client.config, { scope: rs.read });
    t.equal(decodeProtectedHeader(tokens.access_token).alg, "ES256");
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: running.config.issuer, audience: rs.identifier, typ: "at+jwt", algorithms: ["ES256"] });
    t.match(payload, { sub: client.clientId, client_id: client.clientId, aud: rs.identifier, scope: rs.read });
  });

  t.test("clients may be allowed registered API scopes, through the admin API too; unknown scopes are refused", async (t) => {
    const rs = await newResource();
    const created = await api.post("/admin/v1/clients", { client_name: "API worker", grant_types: ["client_credentials"], scope: `${rs.read} ${rs.write}` });
    t.equal(created.status, 201, created.text);
    const refused = await api.post("/admin/v1/clients", { client_name: "API worker", grant_types: ["client_credentials"], scope: "read:nothing-registered" });
    t.equal(refused.status, 400);
    t.equal(refused.json.error, "invalid_client_metadata");
  });

  t.test("a scope the client is not allowed is not granted", async (t) => {
    const rs = await newResource({ tokenFormat: "jwt" });
    const client = await newClient({ scope: rs.read, grantTypes: ["client_credentials"] });
    const res = await tokenRequest(client, { grant_type: "client_credentials", scope: `${rs.read} ${rs.write}` });
    t.equal(res.status, 200, JSON.stringify(res.json));
    t.equal(res.json.scope, rs.read, "only the allowed scope");
  });

  t.test("an opaque resource (the default): checked by introspection; the resource parameter picks it", async (t) => {
    const a = await newResource();
    const b = await newResource();
    const client = await newClient({ scope: `openid ${a.read} ${b.read}` });
    const user = await makeUser(running);
    const pending = await authorizationUrl(client, { scope: `openid ${b.read}`, resource: b.identifier });
    const tokens = await redeem(client, await signInAndConsent(new Browser(running.url), pending, user), pending);
    t.notMatch(tokens.access_token, /^ey.*\..*\./, "not a JWT");
    const answer = await introspect(client, tokens.access_token);
    t.match(answer, { active: true, aud: b.identifier, scope: b.read, client_id: client.clientId, sub: user.id, token_type: "Bearer" });
  });

  t.test("a scope of resource A requested with resource B is refused", async (t) => {
    const a = await newResource();
    const b = await newResource();
    const client = await newClient({ scope: `openid ${a.read} ${b.read}`, grantTypes: ["authorization_code", "client_credentials"] });
    const res = await tokenRequest(client, { grant_type: "client_credentials", scope: a.read, resource: b.identifier });
    t.equal(res.status, 400);
    t.equal(res.json.error, "invalid_scope", String(res.json.error_description));
    const unknown = await tokenRequest(client, { grant_type: "client_credentials", scope: a.read, resource: "https://nothing.example/" });
    t.equal(unknown.status, 400);
    t.equal(unknown.json.error, "invalid_target", "an unregistered resource");
    const both = await tokenRequest(client, { grant_type: "client_credentials", scope: `${a.read} ${b.read}` });
    t.equal(both.status, 400, "scopes of two APIs without a resource parameter");
    t.equal(both.json.error, "invalid_target");
    // At the authorization endpoint, the error goes back to the client.
    const pending = await authorizationUrl(client, { scope: `openid ${a.read}`, resource: b.identifier });
    const page = last(await new Browser(running.url).follow(pending.url));
    t.equal(page.location?.searchParams.get("error"), "invalid_scope", `redirected with error=invalid_scope (${page.status} ${page.location?.href ?? page.body.slice(0, 200)})`);
  });

  t.test("deleting a resource server makes its opaque tokens inactive at once", async (t) => {
    const rs = await newResource();
    const client = await newClient({ scope: `openid ${rs.read}`, grantTypes: ["authorization_code", "refresh_token", "client_credentials"] });
    const user = await makeUser(running);
    const pending = await authorizationUrl(client, { scope: `openid ${rs.read}` });
    const tokens = await redeem(client, await signInAndConsent(new Browser(running.url), pending, user), pending);
    const machine = await oidc.clientCredentialsGrant(client.config, { scope: rs.read });
    t.equal((await introspect(client, tokens.access_token)).active, true);
    t.equal((await introspect(client, machine.access_token)).active, true);
    const deleted = await api.delete(`/admin/v1/resources/${rs.id}`);
    t.equal(deleted.status, 204, deleted.text);
    t.same(await introspect(client, tokens.access_token), { active: false }, "the code flow's token");
    t.same(await introspect(client, machine.access_token), { active: false }, "the client_credentials token");
    t.equal(await running.db.prisma.oidcRecord.count({ where: { clientId: client.clientId, model: { in: ["Grant", "AccessToken", "ClientCredentials"] } } }), 0, "grant and tokens deleted");
    const audit = await running.db.prisma.auditEvent.findFirst({ where: { type: "resource_server.deleted" }, orderBy: { seq: "desc" } });
    t.match(JSON.parse(audit!.data), { identifier: rs.identifier, revoked: { grants: 1, tokens: 2 } });
    const again = await tokenRequest(client, { grant_type: "client_credentials", scope: rs.read, resource: rs.identifier });
    t.equal(again.json.error, "invalid_target", "no new token for it");
    const patched = await api.patch(`/admin/v1/clients/${client.clientId}`, { client_name: "Renamed after its API went" });
    t.equal(patched.status, 200, `the client can still be changed ${patched.text}`);
    t.equal(patched.json.scope, "openid", "the deleted API's scope is dropped from it");
  });

  t.test("introspection answers the token's client and the resource server's introspection clients; others get active:false", async (t) => {
    const gateway = await newClient({ scope: "", grantTypes: ["client_credentials"] });
    const stranger = await newClient({ scope: "", grantTypes: ["client_credentials"] });
    const rs = await newResource({ introspectionClients: [gateway.clientId] });
    const client = await newClient({ scope: rs.read, grantTypes: ["client_credentials"] });
    const { access_token } = await oidc.clientCredentialsGrant(client.config, { scope: rs.read });
    t.match(await introspect(client, access_token), { active: true, aud: rs.identifier }, "its own client");
    t.match(await introspect(gateway, access_token), { active: true, aud: rs.identifier, client_id: client.clientId, scope: rs.read }, "the resource server's introspection client");
    t.same(await introspect(stranger, access_token), { active: false }, "anyone else");
    const other = await newResource({ introspectionClients: [stranger.clientId] });
    t.ok(other.id, "a stranger that introspects for another API");
    t.same(await introspect(stranger, access_token), { active: false }, "still nothing about this API's tokens");
  });

  t.test("a DPoP-bound JWT access token carries cnf.jkt, the proof key's thumbprint (RFC 9449 section 6)", async (t) => {
    const rs = await newResource({ tokenFormat: "jwt" });
    const client = await newClient({ scope: rs.read, grantTypes: ["client_credentials"] });
    const keyPair = await oidc.randomDPoPKeyPair("ES256");
    const tokens = await oidc.clientCredentialsGrant(client.config, { scope: rs.read }, { DPoP: oidc.getDPoPHandle(client.config, keyPair) });
    t.equal(tokens.token_type.toLowerCase(), "dpop");
    const { payload } = await jwtVerify(tokens.access_token, jwks, { audience: rs.identifier, typ: "at+jwt" });
    t.equal((payload.cnf as { jkt?: string } | undefined)?.jkt, await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)));
  });

  t.test("the consent page lists the API's scopes with their descriptions", async (t) => {
    const rs = await newResource();
    const client = await newClient({ scope: `openid ${rs.read}`, firstParty: false });
    const user = await makeUser(running);
    const pending = await authorizationUrl(client, { scope: `openid ${rs.read}` });
    const browser = new Browser(running.url);
    let page = last(await browser.follow(pending.url));
    page = last(await browser.submit(page, { email: user.email, password: user.password }));
    t.ok(isConsentPage(page.body), "a consent page");
    t.match(page.body, `see your ${rs.read.slice(5)} records`, "the scope's description");
    page = last(await browser.submit(page, { decision: "allow" }));
    const tokens = await redeem(client, page.location!, pending);
    t.match(await introspect(client, tokens.access_token), { active: true, scope: rs.read, aud: rs.identifier });
  });
}

for (const provider of providers(t)) {
  t.test(provider, (t) => suite(t, provider));
}
