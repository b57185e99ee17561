/**
 * Working out of the box with relying-party libraries (docs/integrating.md):
 * every client authentication method, every ID token algorithm, and every
 * value that discovery advertises, registered through the admin API and used
 * through openid-client (panva) or, where a value must be forced, a request
 * built with jose. Also: refresh tokens without prompt=consent where consent
 * is otherwise established, a private_key_jwt client's key rotation taking
 * effect at once, and the errors an integrator reads.
 */
import t, { type Test } from "tap";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import * as oidc from "openid-client";
import { SignJWT, createRemoteJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK } from "jose";
import {
  Browser,
  authorizationUrl,
  captureLogs,
  isConsentPage,
  isSignInPage,
  last,
  makeUser,
  redeem,
  redirectUri,
  signInAndConsent,
  startApp,
  type TestClient,
  type TestUser,
} from "../helpers/http-flow.ts";
import { AdminApi, makeAdminClient } from "../helpers/admin.ts";

const { logs, logger } = captureLogs("info");
const running = await startApp(t, {
  // Clients' jwks_uri are on loopback here.
  env: { OUTBOUND_ALLOW_PRIVATE: "true", SIGNIN_MAX_FAILURES_PER_IP: "1000" },
  logger,
});
const api = new AdminApi(running, (await makeAdminClient(running, "admin:read admin:write")).token);
const discovery = (await (await fetch(`${running.url}/.well-known/openid-configuration`)).json()) as Record<string, string[] | string | boolean>;
const list = (name: string) => discovery[name] as string[];
const tokenEndpoint = discovery.token_endpoint as string;
const introspectionEndpoint = discovery.introspection_endpoint as string;
const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri as string));

/** A client registered through the admin API; throws with the answer when refused. */
async function register(body: Record<string, unknown>): Promise<{ client_id: string; client_secret?: string }> {
  const res = await api.post("/admin/v1/clients", { client_name: `RP ${randomUUID().slice(0, 8)}`, ...body });
  if (res.status !== 201) throw new Error(`registration refused: ${res.status} ${res.text}`);
  return res.json;
}

/** openid-client's configuration for a registered client. */
async function configure(clientId: string, clientSecret: string | undefined, metadata: Partial<oidc.ClientMetadata>, auth: oidc.ClientAuth): Promise<TestClient> {
  const config = await oidc.discovery(new URL(running.url), clientId, { ...metadata, ...(clientSecret && { client_secret: clientSecret }) }, auth, {
    execute: [oidc.allowInsecureRequests],
  });
  return { clientId, clientSecret: clientSecret ?? "", config };
}

/** A key pair for a JWS algorithm, with its public JWK (kid set). */
async function keyFor(alg: string): Promise<{ alg: string; privateKey: CryptoKey; jwk: JWK & { kid: string } }> {
  const generated = alg === "Ed25519" || alg === "EdDSA" ? await generateKeyPair("EdDSA", { crv: "Ed25519" }) : await generateKeyPair(alg);
  const kid = randomUUID();
  return { alg, privateKey: generated.privateKey, jwk: { ...(await exportJWK(generated.publicKey)), kid, alg } as JWK & { kid: string } };
}

/** A private_key_jwt client assertion (RFC 7523) signed with `key`, its header alg forced to `alg`. */
function assertion(clientId: string, key: { privateKey: CryptoKey; jwk: { kid: string } }, alg: string, kid = key.jwk.kid): Promise<string> {
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg, kid })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(running.url)
    .setIssuedAt()
    .setExpirationTime("1m")
    .sign(key.privateKey);
}

/** Introspection authenticated by a client assertion: 200 means the client authenticated. */
async function introspectWithAssertion(clientId: string, clientAssertion: string) {
  const res = await fetch(introspectionEndpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      token: "not-a-token",
      client_id: clientId,
      client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
      client_assertion: clientAssertion,
    }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** A JWKS server on loopback whose keys the test changes, counting fetches. */
async function startJwksServer(t: Test) {
  const state = { keys: [] as JWK[], fetches: 0 };
  const server = createServer((_req, res) => {
    state.fetches += 1;
    res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=300" }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  return { state, url: `http://127.0.0.1:${port}/jwks.json` };
}

/** Sign-in (and consent if asked) then the code exchange, with openid-client. */
async function codeFlow(client: TestClient, user: TestUser, params: Record<string, string> = {}) {
  const pending = await authorizationUrl(client, { scope: "openid email", ...params });
  return redeem(client, await signInAndConsent(new Browser(running.url), pending, user), pending);
}

t.test("discovery lists exactly the supported client authentication methods, the same at every endpoint", async (t) => {
  const methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
  t.same(list("token_endpoint_auth_methods_supported"), methods, "no client_secret_jwt, which cannot be registered");
  t.same(list("introspection_endpoint_auth_methods_supported"), methods);
  t.same(list("revocation_endpoint_auth_methods_supported"), methods);
  t.notOk(list("token_endpoint_auth_signing_alg_values_supported").includes("HS256"), "no HMAC assertion algorithm");
  t.same(list("introspection_endpoint_auth_signing_alg_values_supported"), list("token_endpoint_auth_signing_alg_values_supported"));
});

t.test("each client authentication method works at the token, introspection and revocation endpoints", async (t) => {
  const user = await makeUser(running);
  const jwksServer = await startJwksServer(t);
  const ecKey = await keyFor("ES256");
  jwksServer.state.keys = [ecKey.jwk];
  const rsaKey = await keyFor("RS256");
  const base = { redirect_uris: [redirectUri], first_party: true, scope: "openid email" };
  const cases: [string, () => Promise<TestClient>][] = [
    ["client_secret_basic", async () => {
      const c = await register({ ...base, token_endpoint_auth_method: "client_secret_basic" });
      return configure(c.client_id, c.client_secret, {}, oidc.ClientSecretBasic(c.client_secret!));
    }],
    ["client_secret_post", async () => {
      const c = await register({ ...base, token_endpoint_auth_method: "client_secret_post" });
      return configure(c.client_id, c.client_secret, {}, oidc.ClientSecretPost(c.client_secret!));
    }],
    ["private_key_jwt with a jwks_uri", async () => {
      const c = await register({ ...base, token_endpoint_auth_method: "private_key_jwt", jwks_uri: jwksServer.url });
      t.notOk(c.client_secret, "no secret is issued to a private_key_jwt client");
      return configure(c.client_id, undefined, {}, oidc.PrivateKeyJwt({ key: ecKey.privateKey, kid: ecKey.jwk.kid }));
    }],
    ["private_key_jwt with inline jwks", async () => {
      const c = await register({ ...base, token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [rsaKey.jwk] } });
      return configure(c.client_id, undefined, {}, oidc.PrivateKeyJwt({ key: rsaKey.privateKey, kid: rsaKey.jwk.kid }));
    }],
    ["none (a public client with PKCE)", async () => {
      const c = await register({ ...base, token_endpoint_auth_method: "none" });
      return configure(c.client_id, undefined, {}, oidc.None());
    }],
  ];
  for (const [method, make] of cases) {
    await t.test(method, async (t) => {
      const client = await make();
      const tokens = await codeFlow(client, user);
      t.equal(decodeProtectedHeader(tokens.id_token!).alg, "RS256", "the ID token is RS256 by default");
      t.equal((await oidc.tokenIntrospection(client.config, tokens.access_token)).active, true, "introspection authenticates the client");
      await oidc.tokenRevocation(client.config, tokens.access_token);
      t.equal((await oidc.tokenIntrospection(client.config, tokens.access_token)).active, false, "revocation authenticates it too");
    });
  }
});

t.test("ID tokens are signed with the client's id_token_signed_response_alg, and verify against the JWKS", async (t) => {
  const user = await makeUser(running);
  t.same([...list("id_token_signing_alg_values_supported")].sort(), ["ES256", "EdDSA", "RS256"]);
  for (const alg of list("id_token_signing_alg_values_supported")) {
    const c = await register({ redirect_uris: [redirectUri], first_party: true, scope: "openid email", id_token_signed_response_alg: alg });
    t.equal((await api.get(`/admin/v1/clients/${c.client_id}`)).json.id_token_signed_response_alg, alg, `${alg}: registered`);
    const client = await configure(c.client_id, c.client_secret, { id_token_signed_response_alg: alg }, oidc.ClientSecretBasic(c.client_secret!));
    const tokens = await codeFlow(client, user);
    t.equal(decodeProtectedHeader(tokens.id_token!).alg, alg, `${alg}: the ID token's alg`);
    const { payload } = await jwtVerify(tokens.id_token!, jwks, { issuer: running.url, audience: c.client_id, algorithms: [alg] });
    t.equal(payload.sub, user.id, `${alg}: verifies against the JWKS`);
  }
  const refused = await api.post("/admin/v1/clients", { client_name: "HS", redirect_uris: [redirectUri], id_token_signed_response_alg: "HS256" });
  t.equal(refused.status, 400, "an algorithm discovery does not list is refused");
  t.match(refused.json.error_description, "id_token_signed_response_alg");
});

t.test("every client assertion algorithm discovery advertises can be registered and used", async (t) => {
  for (const alg of list("token_endpoint_auth_signing_alg_values_supported")) {
    const key = await keyFor(alg);
    const c = await register({ grant_types: ["client_credentials"], scope: "admin:read", token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [{ ...key.jwk, alg: undefined }] } });
    const res = await introspectWithAssertion(c.client_id, await assertion(c.client_id, key, alg));
    t.same(res, { status: 200, json: { active: false } }, `${alg}: the client authenticates`);
  }
});

t.test("every DPoP algorithm discovery advertises binds a token", async (t) => {
  const c = await register({ grant_types: ["client_credentials"], scope: "admin:read" });
  for (const alg of list("dpop_signing_alg_values_supported")) {
    const key = await keyFor(alg);
    const { kid: _kid, alg: _alg, ...publicJwk } = key.jwk;
    const proof = await new SignJWT({ htm: "POST", htu: tokenEndpoint, jti: randomUUID() })
      .setProtectedHeader({ alg, typ: "dpop+jwt", jwk: publicJwk })
      .setIssuedAt()
      .sign(key.privateKey);
    const res = await fetch(tokenEndpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString("base64")}`, dpop: proof },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: "admin:read" }),
    });
    const body = (await res.json()) as Record<string, unknown>;
    t.equal(res.status, 200, `${alg}: ${JSON.stringify(body)}`);
    t.equal(body.token_type, "DPoP", `${alg}: a DPoP-bound token`);
  }
});

t.test("signed introspection uses the client's introspection_signed_response_alg", async (t) => {
  for (const alg of list("introspection_signing_alg_values_supported")) {
    const c = await register({ grant_types: ["client_credentials"], scope: "admin:read", introspection_signed_response_alg: alg });
    const basic = `Basic ${Buffer.from(`${c.client_id}:${c.client_secret}`).toString("base64")}`;
    const issued = await fetch(tokenEndpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: "admin:read" }),
    });
    const { access_token } = (await issued.json()) as { access_token: string };
    const res = await fetch(introspectionEndpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic, accept: "application/token-introspection+jwt" },
      body: new URLSearchParams({ token: access_token }),
    });
    const jwt = await res.text();
    t.equal(decodeProtectedHeader(jwt).alg, alg, `${alg}: the response's alg`);
    const { payload } = await jwtVerify(jwt, jwks, { issuer: running.url, audience: c.client_id, algorithms: [alg] });
    t.match(payload.token_introspection, { active: true }, `${alg}: verifies against the JWKS`);
  }
});

t.test("every advertised scope and grant type can be registered", async (t) => {
  const c = await register({ redirect_uris: [redirectUri], grant_types: list("grant_types_supported"), scope: list("scopes_supported").join(" ") });
  const view = (await api.get(`/admin/v1/clients/${c.client_id}`)).json;
  t.same(view.grant_types, list("grant_types_supported"));
  t.same(view.scope.split(" "), list("scopes_supported"));
});

t.test("a private_key_jwt client's new key works at once, and refetches of its jwks_uri are rate limited", async (t) => {
  const jwksServer = await startJwksServer(t);
  const first = await keyFor("ES256");
  jwksServer.state.keys = [first.jwk];
  const c = await register({ grant_types: ["client_credentials"], scope: "admin:read", token_endpoint_auth_method: "private_key_jwt", jwks_uri: jwksServer.url });
  t.equal((await introspectWithAssertion(c.client_id, await assertion(c.client_id, first, "ES256"))).status, 200, "the first key authenticates");
  t.equal(jwksServer.state.fetches, 1, "(one fetch of the jwks_uri)");

  // Later (past the refetch interval, 5 s), the client rotates: its jwks_uri
  // now publishes only the new key, and it had said to cache the old set for 5 minutes.
  await new Promise((resolve) => setTimeout(resolve, 5_200));
  const second = await keyFor("ES256");
  jwksServer.state.keys = [second.jwk];
  t.equal((await introspectWithAssertion(c.client_id, await assertion(c.client_id, second, "ES256"))).status, 200, "the new key works at once");
  t.equal(jwksServer.state.fetches, 2, "its unknown kid made Gatehouse fetch the jwks_uri again");

  const stranger = await keyFor("ES256");
  const refused = await introspectWithAssertion(c.client_id, await assertion(c.client_id, stranger, "ES256"));
  t.equal(refused.status, 401, "a key the client never published is refused");
  t.equal(refused.json.error, "invalid_client");
  t.equal(jwksServer.state.fetches, 2, "and, within 5 s of the last fetch, causes no new one");
});

t.test("refresh tokens with offline_access without prompt=consent where consent is established", async (t) => {
  const user = await makeUser(running);

  await t.test("a first-party client gets one without prompt=consent and without a consent page", async (t) => {
    const c = await register({ redirect_uris: [redirectUri], first_party: true, scope: "openid offline_access" });
    const client = await configure(c.client_id, c.client_secret, {}, oidc.ClientSecretBasic(c.client_secret!));
    const browser = new Browser(running.url);
    const pending = await authorizationUrl(client, { scope: "openid offline_access" });
    const signIn = last(await browser.follow(pending.url));
    t.ok(isSignInPage(signIn.body));
    const done = last(await browser.submit(signIn, { email: user.email, password: user.password }));
    t.ok(done.location?.href.startsWith(`${redirectUri}?`), "no consent page: straight back to the client");
    const tokens = await redeem(client, done.location!, pending);
    t.type(tokens.refresh_token, "string", "a refresh token");
    t.match(tokens.scope, "offline_access");
    t.type((await oidc.refreshTokenGrant(client.config, tokens.refresh_token!)).refresh_token, "string", "that refreshes");
  });

  await t.test("a third-party client gets one once the user consented to offline_access", async (t) => {
    const c = await register({ redirect_uris: [redirectUri], scope: "openid offline_access" });
    const client = await configure(c.client_id, c.client_secret, {}, oidc.ClientSecretBasic(c.client_secret!));
    const browser = new Browser(running.url);

    const firstRequest = await authorizationUrl(client, { scope: "openid offline_access" });
    const signIn = last(await browser.follow(firstRequest.url));
    const consent = last(await browser.submit(signIn, { email: user.email, password: user.password }));
    t.ok(isConsentPage(consent.body), "the first time, the consent page");
    t.match(consent.body, "stay signed in", "and it asks for offline access");
    const allowed = last(await browser.submit(consent, { decision: "allow" }));
    const first = await redeem(client, allowed.location!, firstRequest);
    t.type(first.refresh_token, "string", "after Allow: a refresh token");

    const again = await authorizationUrl(client, { scope: "openid offline_access" });
    const back = last(await browser.follow(again.url));
    t.ok(back.location?.href.startsWith(`${redirectUri}?`), "the next time, no page at all (signed in, consent given)");
    t.type((await redeem(client, back.location!, again)).refresh_token, "string", "and a refresh token");

    const asked = await authorizationUrl(client, { scope: "openid offline_access", prompt: "consent" });
    t.ok(isConsentPage(last(await browser.follow(asked.url)).body), "prompt=consent from the client still shows the page");
  });

  await t.test("a native app is still asked every time (its redirect URI could be claimed by another app)", async (t) => {
    const nativeRedirect = "com.example.orders:/callback";
    const c = await register({ redirect_uris: [nativeRedirect], token_endpoint_auth_method: "none", scope: "openid offline_access" });
    const client = await configure(c.client_id, undefined, {}, oidc.None());
    const browser = new Browser(running.url);
    for (const round of ["first", "second"]) {
      const pending = await authorizationUrl(client, { scope: "openid offline_access", redirect_uri: nativeRedirect });
      let page = last(await browser.follow(pending.url));
      if (isSignInPage(page.body)) page = last(await browser.submit(page, { email: user.email, password: user.password }));
      t.ok(isConsentPage(page.body), `${round} authorization: the consent page`);
      const done = last(await browser.submit(page, { decision: "allow" }));
      t.ok(done.location?.href.startsWith(`${nativeRedirect}?`), `${round}: back to the app after Allow`);
    }
  });

  await t.test("without offline_access in the request there is none", async (t) => {
    const c = await register({ redirect_uris: [redirectUri], first_party: true, scope: "openid offline_access" });
    const client = await configure(c.client_id, c.client_secret, {}, oidc.ClientSecretBasic(c.client_secret!));
    t.equal((await codeFlow(client, user, { scope: "openid" })).refresh_token, undefined);
  });
});

t.test("a failed client authentication is logged with its reason and counted, without the secret", async (t) => {
  const c = await register({ grant_types: ["client_credentials"], scope: "admin:read" });
  const metric = async () => {
    const text = await (await fetch(`${running.url}/metrics`)).text();
    return Number(/^gatehouse_client_auth_failures_total\{endpoint="token"\} (\d+)/m.exec(text)?.[1] ?? 0);
  };
  const before = await metric();
  const wrongSecret = "definitely-not-the-secret-9d1c";
  const res = await fetch(tokenEndpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${Buffer.from(`${c.client_id}:${wrongSecret}`).toString("base64")}` },
    body: new URLSearchParams({ grant_type: "client_credentials", scope: "admin:read" }),
  });
  t.equal(res.status, 401);
  t.equal(((await res.json()) as { error: string }).error, "invalid_client");
  const line = logs.find((l) => l.msg === "client authentication failed" && l.clientId === c.client_id);
  t.ok(line, "an info line names the client");
  t.equal(line?.level, 30, "at info");
  t.match(line, { endpoint: "token", reason: /secret/ }, "with the reason");
  t.notMatch(JSON.stringify(logs), wrongSecret, "the presented secret is in no log line");
  t.equal(await metric(), before + 1, "gatehouse_client_auth_failures_total counts it");
});

t.test("admin API validation errors name the property", async (t) => {
  const key = await keyFor("ES256");
  const leaked = await api.post("/admin/v1/clients", {
    client_name: "Leaky",
    grant_types: ["client_credentials"],
    scope: "admin:read",
    token_endpoint_auth_method: "private_key_jwt",
    jwks: { keys: [{ ...key.jwk, d: "private-part" }] },
  });
  t.equal(leaked.status, 400);
  t.equal(leaked.json.error_description, 'body.jwks.keys.0 has an unknown property "d"', "a private key member is named");
  const unknown = await api.post("/admin/v1/clients", { client_name: "Typo", redirect_uri: [redirectUri] });
  t.equal(unknown.json.error_description, 'body has an unknown property "redirect_uri"');
  const both = await api.post("/admin/v1/clients", { client_name: "Both", grant_types: ["client_credentials"], scope: "admin:read", token_endpoint_auth_method: "private_key_jwt", jwks: { keys: [key.jwk] }, jwks_uri: "https://rp.example/jwks" });
  t.equal(both.status, 400);
  t.match(both.json.error_description, "not both", "jwks and jwks_uri together are refused (RFC 7591 section 2)");
});

t.test("a logout error says what was received", async (t) => {
  const c = await register({ redirect_uris: [redirectUri], post_logout_redirect_uris: ["http://127.0.0.1:9/bye"] });
  const received = "https://evil.example/after-logout";
  const res = await fetch(`${running.url}/session/end?client_id=${c.client_id}&post_logout_redirect_uri=${encodeURIComponent(received)}`, { headers: { accept: "text/html" } });
  t.equal(res.status, 400);
  const html = await res.text();
  t.match(html, "Sign-out error", "titled as a sign-out error");
  t.notMatch(html, "Sign-in error");
  t.match(html, received, "and shows the post_logout_redirect_uri that was received");
});
