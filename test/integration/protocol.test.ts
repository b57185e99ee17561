/**
 * Protocol behaviour that the README promises beyond the basic code flow:
 * prompt and max_age, claims per scope in the ID token, PAR, DPoP,
 * REFRESH_REUSE_GRACE, back-channel logout, and the token lifetimes.
 */
import t from "tap";
import { createServer } from "node:http";
import * as oidc from "openid-client";
import { decodeJwt, decodeProtectedHeader, createRemoteJWKSet, jwtVerify } from "jose";
import {
  Browser,
  authorizationUrl,
  isSignInPage,
  last,
  makeClient,
  makeUser,
  redeem,
  redirectUri,
  signInAndConsent,
  startApp,
} from "../helpers/http-flow.ts";
import { createClient } from "../../src/services/clients.ts";
import { freePort } from "../helpers/processes.ts";

// OUTBOUND_ALLOW_PRIVATE: the back-channel receiver below listens on loopback.
const running = await startApp(t, {
  env: { REFRESH_REUSE_GRACE: "5s", ACCESS_TOKEN_TTL: "10m", SIGNIN_MAX_FAILURES_PER_IP: "1000", OUTBOUND_ALLOW_PRIVATE: "true" },
});

t.test("prompt=none answers login_required without a session, and succeeds silently with one", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { firstParty: true });
  const browser = new Browser(running.url);
  const silent = await authorizationUrl(client, { prompt: "none" });
  const answer = last(await browser.follow(silent.url));
  t.equal(answer.location?.origin + answer.location!.pathname, redirectUri, "redirected back to the client");
  t.equal(answer.location?.searchParams.get("error"), "login_required");
  t.equal(answer.location?.searchParams.get("state"), silent.state);

  await signInAndConsent(browser, await authorizationUrl(client), user);
  const again = await authorizationUrl(client, { prompt: "none" });
  const callback = last(await browser.follow(again.url)).location!;
  t.ok(callback.searchParams.get("code"), "a code, with no page shown");
  const tokens = await redeem(client, callback, again);
  t.equal(tokens.claims()?.sub, user.id);
});

t.test("prompt=none answers consent_required when consent is missing", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { name: "Needs consent" });
  const browser = new Browser(running.url);
  await signInAndConsent(browser, await authorizationUrl(client, { scope: "openid" }), user);
  const more = await authorizationUrl(client, { scope: "openid email", prompt: "none" });
  t.equal(last(await browser.follow(more.url)).location?.searchParams.get("error"), "consent_required");
});

t.test("prompt=login and max_age=0 force a fresh sign-in despite a session", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { firstParty: true });
  const browser = new Browser(running.url);
  await signInAndConsent(browser, await authorizationUrl(client), user);
  const cases: Record<string, string>[] = [{ prompt: "login" }, { max_age: "0" }];
  for (const params of cases) {
    const pending = await authorizationUrl(client, params);
    const page = last(await browser.follow(pending.url));
    t.ok(isSignInPage(page.body), `${JSON.stringify(params)}: the sign-in page is shown again`);
    const callback = await signInAndConsent(browser, pending, user);
    const tokens = await redeem(client, callback, pending);
    const claims = tokens.claims()!;
    t.ok(typeof claims.auth_time === "number" && Math.abs(claims.auth_time - Date.now() / 1000) < 30, `${JSON.stringify(params)}: auth_time is the fresh sign-in`);
  }
});

t.test("the ID token carries the claims of the granted scopes, signed RS256 by default", async (t) => {
  const user = await makeUser(running, { name: "Ada Lovelace" });
  await running.db.prisma.user.update({ where: { id: user.id }, data: { role: "editor" } });
  const client = await makeClient(running, { firstParty: true, scope: "openid profile email roles" });
  const narrow = await authorizationUrl(client, { scope: "openid" });
  const narrowTokens = await redeem(client, await signInAndConsent(new Browser(running.url), narrow, user), narrow);
  const onlySub = narrowTokens.claims()!;
  t.equal(onlySub.sub, user.id);
  t.notOk("email" in onlySub || "name" in onlySub || "role" in onlySub, "scope openid alone: no profile, email or role");

  const wide = await authorizationUrl(client, { scope: "openid profile email roles" });
  const tokens = await redeem(client, await signInAndConsent(new Browser(running.url), wide, user), wide);
  t.equal(decodeProtectedHeader(tokens.id_token!).alg, "RS256", "RS256, the registration default relying parties expect");
  t.match(tokens.claims(), { sub: user.id, email: user.email, email_verified: false, name: "Ada Lovelace", role: "editor" });
  const jwks = createRemoteJWKSet(new URL(`${running.url}/jwks`));
  const { payload } = await jwtVerify(tokens.id_token!, jwks, { issuer: running.url, audience: client.clientId });
  t.ok(payload.exp! - payload.iat! <= 15 * 60, "ID_TOKEN_TTL defaults to 15 minutes");
  t.equal(tokens.expires_in, 600, "ACCESS_TOKEN_TTL from configuration (10m here)");
  const userinfo = await oidc.fetchUserInfo(client.config, tokens.access_token, user.id);
  t.match(userinfo, { sub: user.id, email: user.email, name: "Ada Lovelace", role: "editor" });
});

t.test("pushed authorization requests (PAR) work end to end", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { firstParty: true });
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = await oidc.buildAuthorizationUrlWithPAR(client.config, {
    redirect_uri: redirectUri,
    scope: "openid email",
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: "S256",
    state,
  });
  t.ok(url.searchParams.get("request_uri")?.startsWith("urn:ietf:params:oauth:request_uri:"), "the browser carries only a request_uri");
  t.notOk(url.searchParams.has("redirect_uri"));
  const pending = { url, codeVerifier, state, nonce: "" };
  const callback = await signInAndConsent(new Browser(running.url), pending, user);
  const tokens = await oidc.authorizationCodeGrant(client.config, callback, { pkceCodeVerifier: codeVerifier, expectedState: state });
  t.equal(tokens.claims()?.sub, user.id);
});

t.test("DPoP binds the tokens to the client's key", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { firstParty: true });
  const pending = await authorizationUrl(client, { scope: "openid email offline_access", prompt: "consent" });
  const callback = await signInAndConsent(new Browser(running.url), pending, user);
  const dpop = oidc.getDPoPHandle(client.config, await oidc.randomDPoPKeyPair("ES256"));
  const tokens = await oidc.authorizationCodeGrant(client.config, callback, { pkceCodeVerifier: pending.codeVerifier, expectedState: pending.state, expectedNonce: pending.nonce }, undefined, { DPoP: dpop });
  t.equal(tokens.token_type.toLowerCase(), "dpop");
  t.ok(await oidc.fetchUserInfo(client.config, tokens.access_token, user.id, { DPoP: dpop }), "userinfo with the proof");
  const bare = await fetch(`${running.url}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  t.equal(bare.status, 401, "the token alone, without a proof, is refused");
  // RFC 9449 section 5: a confidential client's refresh token is not bound, but
  // the access token it gets is bound to the proof sent with the refresh.
  const otherKey = oidc.getDPoPHandle(client.config, await oidc.randomDPoPKeyPair("ES256"));
  const refreshed = await oidc.refreshTokenGrant(client.config, tokens.refresh_token!, undefined, { DPoP: otherKey });
  const introspected = await oidc.tokenIntrospection(client.config, refreshed.access_token);
  t.ok((introspected.cnf as { jkt?: string } | undefined)?.jkt, "the refreshed access token is sender-constrained (cnf.jkt)");
  await t.rejects(oidc.fetchUserInfo(client.config, refreshed.access_token, user.id, { DPoP: dpop }), "and the old key's proof does not fit it");
});

t.test("REFRESH_REUSE_GRACE lets a client retry a lost refresh response", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { firstParty: true });
  const pending = await authorizationUrl(client, { scope: "openid offline_access", prompt: "consent" });
  const tokens = await redeem(client, await signInAndConsent(new Browser(running.url), pending, user), pending);
  const first = await oidc.refreshTokenGrant(client.config, tokens.refresh_token!);
  // The response to `first` was "lost": the client presents the old token again within 5 s.
  const retry = await oidc.refreshTokenGrant(client.config, tokens.refresh_token!);
  t.not(retry.refresh_token, first.refresh_token, "the retry rotates again");
  t.ok(await oidc.refreshTokenGrant(client.config, retry.refresh_token!), "and the grant survives");
  t.equal(await running.db.prisma.auditEvent.count({ where: { type: "refresh_token.reused", userId: user.id } }), 0, "no reuse was recorded");
});

t.test("reuse outside the grace period revokes the grant, and is audited", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { firstParty: true });
  const pending = await authorizationUrl(client, { scope: "openid offline_access", prompt: "consent" });
  const tokens = await redeem(client, await signInAndConsent(new Browser(running.url), pending, user), pending);
  const rotated = await oidc.refreshTokenGrant(client.config, tokens.refresh_token!);
  await running.db.prisma.oidcRecord.updateMany({ where: { model: "RefreshToken", consumedAt: { not: null } }, data: { consumedAt: new Date(Date.now() - 60_000) } });
  await t.rejects(oidc.refreshTokenGrant(client.config, tokens.refresh_token!), { error: "invalid_grant" } as object as Error);
  await t.rejects(oidc.refreshTokenGrant(client.config, rotated.refresh_token!), { error: "invalid_grant" } as object as Error, "the newest token died with the grant");
  // Audited after the answer: up to 5 s on a busy machine.
  for (let i = 0; i < 100 && (await running.db.prisma.auditEvent.count({ where: { type: "refresh_token.reused", userId: user.id } })) === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const events = await running.db.prisma.auditEvent.findMany({ where: { type: "refresh_token.reused", userId: user.id } });
  t.equal(events.length, 1, "audited");
  t.equal(events[0]?.clientId, client.clientId);
  const metrics = await (await fetch(`${running.url}/metrics`)).text();
  t.match(metrics, /gatehouse_refresh_token_reuse_total [1-9]/, "counted in the metrics");
});

t.test("back-channel logout: ending the session notifies the client with a signed logout token", async (t) => {
  const received: string[] = [];
  const port = await freePort();
  const rp = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received.push(new URLSearchParams(body).get("logout_token") ?? "");
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => rp.listen(port, "127.0.0.1", resolve));
  t.teardown(() => rp.close());

  const user = await makeUser(running);
  const created = await createClient(running.db, running.ring, {
    name: "Back-channel RP",
    redirectUris: [redirectUri],
    postLogoutRedirectUris: ["http://127.0.0.1:9/bye"],
    scope: "openid email",
    firstParty: true,
    backchannelLogoutUri: `http://127.0.0.1:${port}/backchannel`,
  });
  const config = await oidc.discovery(new URL(running.url), created.client_id, created.client_secret!, oidc.ClientSecretBasic(created.client_secret!), {
    execute: [oidc.allowInsecureRequests],
  });
  const client = { clientId: created.client_id, clientSecret: created.client_secret!, config };
  const browser = new Browser(running.url);
  const pending = await authorizationUrl(client);
  const tokens = await redeem(client, await signInAndConsent(browser, pending, user), pending);

  const end = oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: "http://127.0.0.1:9/bye", state: "bye" });
  const confirm = last(await browser.follow(end));
  t.match(confirm.body, "Sign out", "the sign-out confirmation page");
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)?.[1];
  t.ok(xsrf, "the form carries oidc-provider's CSRF token");
  const action = /action="([^"]+)"/.exec(confirm.body)?.[1]!;
  const done = last(await browser.follow(new URL(action.replace(/&amp;/g, "&"), running.url), { form: { xsrf: xsrf!, logout: "yes" } }));
  t.equal(done.location?.href, "http://127.0.0.1:9/bye?state=bye", "back to the post_logout_redirect_uri with the state");

  for (let i = 0; i < 40 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(received.length, 1, "the client's back-channel endpoint was called");
  const claims = decodeJwt(received[0]!);
  t.equal(claims.iss, running.url);
  t.equal(claims.aud, created.client_id);
  t.equal(claims.sub, user.id);
  t.ok((claims.events as Record<string, unknown>)["http://schemas.openid.net/event/backchannel-logout"], "the back-channel logout event");
  await jwtVerify(received[0]!, createRemoteJWKSet(new URL(`${running.url}/jwks`)), { issuer: running.url, audience: created.client_id });
});
