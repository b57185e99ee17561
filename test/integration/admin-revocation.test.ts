/**
 * Revocation through the admin API, end to end (README): users
 * signed in through the real sign-in form (fetch and a cookie jar, no
 * browser), tokens from a real code flow redeemed by openid-client, and after
 * each revoking call, checked against the live server as a relying party and
 * a resource server would: introspection says active: false, userinfo answers
 * 401, the refresh token is refused (invalid_grant), and what was not revoked
 * still works. Ending a session means the next authorization request has to
 * sign in again.
 */
import t, { type Test } from "tap";
import * as oidc from "openid-client";
import type { DatabaseProvider } from "../../src/db/database.ts";
import { providers } from "../helpers/databases.ts";
import {
  Browser,
  authorizationUrl,
  csrfToken,
  errorParagraph,
  isSignInPage,
  last,
  makeClient,
  makeUser,
  redirectUri,
  startApp,
  strongPassword,
  type RunningApp,
  type TestClient,
} from "../helpers/http-flow.ts";
import { AdminApi, makeAdminClient, signIn, type SignedInUser } from "../helpers/admin.ts";

type Outcome = { ok: true; value: unknown } | { ok: false; status?: number; error?: string };

async function outcome(promise: Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    const e = error as { status?: number; error?: string; cause?: unknown };
    // A 401 with a WWW-Authenticate challenge carries its error code in the challenge's parameters.
    const challenge = Array.isArray(e.cause) ? (e.cause as { parameters?: { error?: string } }[])[0]?.parameters?.error : undefined;
    return { ok: false, status: e.status, error: e.error ?? challenge };
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface World {
  running: RunningApp;
  /** An on-call token: may revoke, may not create or change. */
  revoker: AdminApi;
  /** For the changes that also revoke (password, disable, delete). */
  writer: AdminApi;
  /** A confidential client playing the resource server: it calls userinfo with everyone's tokens. */
  resourceServer: TestClient;
}

/**
 * Introspection of `token` by `s`'s client: introspection answers only to a
 * token's own client. Once that client is deleted nobody can ask any more,
 * which is as inactive as a token gets (userinfo is checked as well).
 */
async function introspect(s: SignedInUser, token: string): Promise<oidc.IntrospectionResponse> {
  const result = await outcome(oidc.tokenIntrospection(s.client.config, token));
  if (result.ok) return result.value as oidc.IntrospectionResponse;
  if (result.error === "invalid_client") return { active: false };
  throw new Error(`introspection failed: ${JSON.stringify(result)}`);
}

/** What a resource server and the relying party see of `s`'s tokens now. */
async function observe(w: World, s: SignedInUser) {
  const rs = w.resourceServer.config;
  const access = await introspect(s, s.accessToken);
  const refresh = s.refreshToken ? await introspect(s, s.refreshToken) : undefined;
  const userinfo = await outcome(oidc.fetchUserInfo(rs, s.accessToken, oidc.skipSubjectCheck));
  return { access, refresh, userinfo };
}

/** Everything `s` holds is dead: introspection, userinfo and the refresh grant all say so. */
async function expectRevoked(t: Test, w: World, s: SignedInUser, label: string, refreshError: RegExp = /^invalid_grant$/) {
  const seen = await observe(w, s);
  t.equal(seen.access.active, false, `${label}: introspection of the access token says active: false`);
  if (seen.refresh) t.equal(seen.refresh.active, false, `${label}: introspection of the refresh token says active: false`);
  t.match(seen.userinfo, { ok: false, status: 401 }, `${label}: userinfo answers 401`);
  if (s.refreshToken) {
    const refreshed = await outcome(oidc.refreshTokenGrant(s.client.config, s.refreshToken));
    t.equal(refreshed.ok, false, `${label}: the refresh token is refused`);
    t.match(refreshed, { ok: false, error: refreshError }, `${label}: with ${refreshError}`);
  }
}

/** Everything `s` holds still works. The refresh rotates: `s` is updated with the new tokens. */
async function expectActive(t: Test, w: World, s: SignedInUser, label: string) {
  const seen = await observe(w, s);
  t.equal(seen.access.active, true, `${label}: the access token is still active`);
  t.equal(seen.access.sub, s.user.id, `${label}: for the user`);
  t.match(seen.userinfo, { ok: true, value: { sub: s.user.id, email: s.user.email } }, `${label}: userinfo still answers`);
  if (s.refreshToken) {
    const refreshed = await outcome(oidc.refreshTokenGrant(s.client.config, s.refreshToken));
    t.equal(refreshed.ok, true, `${label}: the refresh token still works ${JSON.stringify(refreshed)}`);
    if (refreshed.ok) {
      const tokens = refreshed.value as oidc.TokenEndpointResponse;
      s.accessToken = tokens.access_token;
      s.refreshToken = tokens.refresh_token ?? s.refreshToken;
    }
  }
}

/** Whether a new authorization request in `browser` shows the sign-in form (no live session) or goes straight back with a code. */
async function authorizationOutcome(browser: Browser, client: TestClient): Promise<"sign-in" | "code" | string> {
  const pending = await authorizationUrl(client, { scope: "openid email" });
  const page = last(await browser.follow(pending.url));
  if (page.status === 200 && isSignInPage(page.body)) return "sign-in";
  if (page.location?.href.startsWith(`${redirectUri}?`) && page.location.searchParams.get("code")) return "code";
  return `${page.status} ${page.location?.href ?? page.body.slice(0, 200)}`;
}

/** Signs in with the form of a fresh authorization request; returns the sign-in page's verdict. */
async function trySignIn(w: World, client: TestClient, email: string, password: string) {
  const browser = new Browser(w.running.url);
  const pending = await authorizationUrl(client, { scope: "openid email" });
  const page = last(await browser.follow(pending.url));
  const res = await browser.request(`${page.url.pathname}/login`, { form: { csrf: csrfToken(page.body), email, password } });
  return { status: res.status, error: errorParagraph(res.body) };
}

async function revocationSuite(t: Test, provider: DatabaseProvider) {
  const running = await startApp(t, { provider, env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
  const w: World = {
    running,
    revoker: new AdminApi(running, (await makeAdminClient(running, "admin:revoke", "On-call revoker")).token),
    writer: new AdminApi(running, (await makeAdminClient(running, "admin:write", "Admin writer")).token),
    resourceServer: await makeClient(running, { name: "Resource server" }),
  };
  const appA = await makeClient(running, { name: "App A", firstParty: true });
  const appB = await makeClient(running, { name: "App B", firstParty: true });
  /** A user signed in once in one browser, holding tokens from App A and from App B (one session, two grants). */
  const userWithTwoApps = async () => {
    const a = await signIn(running, { client: appA });
    const b = await signIn(running, { client: appB, user: a.user, browser: a.browser });
    return { a, b };
  };

  t.test("a fresh sign-in's tokens are live (the baseline for every check below)", async (t) => {
    const { a, b } = await userWithTwoApps();
    t.not(a.grantId, b.grantId, "one grant per app");
    const sessions = await running.db.prisma.oidcRecord.findMany({ where: { model: "Session", accountId: a.user.id }, select: { id: true } });
    t.same(sessions, [{ id: b.sessionId }], "one session, the browser's");
    t.type(a.refreshToken, "string", "offline_access gave a refresh token");
    await expectActive(t, w, a, "App A");
    await expectActive(t, w, b, "App B");
    t.equal(await authorizationOutcome(a.browser, appA), "code", "the session signs the user in silently");
  });

  t.test("DELETE /admin/v1/grants/{id} revokes that grant's tokens, and only those", async (t) => {
    const { a, b } = await userWithTwoApps();
    const res = await w.revoker.delete(`/admin/v1/grants/${a.grantId}`);
    t.equal(res.status, 204);
    await expectRevoked(t, w, a, "App A's grant");
    await expectActive(t, w, b, "App B's grant");
    const again = await w.revoker.delete(`/admin/v1/grants/${a.grantId}`);
    t.equal(again.status, 404, "the grant is gone: a second DELETE is a 404");
  });

  t.test("DELETE /admin/v1/users/{id}/grants revokes everything the user granted", async (t) => {
    const { a, b } = await userWithTwoApps();
    const other = await signIn(running, { client: appA });
    const res = await w.revoker.delete(`/admin/v1/users/${a.user.id}/grants`);
    t.equal(res.status, 204);
    await expectRevoked(t, w, a, "App A");
    await expectRevoked(t, w, b, "App B");
    await expectActive(t, w, other, "another user of App A");
    const list = await w.writer.call("GET", `/admin/v1/users/${a.user.id}/grants`);
    t.equal(list.status, 403, "(the writer cannot read)");
  });

  t.test("DELETE /admin/v1/users/{id}/grants?client_id= revokes what the user granted one client", async (t) => {
    const { a, b } = await userWithTwoApps();
    const res = await w.revoker.delete(`/admin/v1/users/${a.user.id}/grants?client_id=${encodeURIComponent(appA.clientId)}`);
    t.equal(res.status, 204);
    await expectRevoked(t, w, a, "App A");
    await expectActive(t, w, b, "App B");
  });

  t.test("DELETE /admin/v1/users/{id}/sessions signs the user out everywhere", async (t) => {
    const user = await makeUser(running);
    // Two browsers; in each, App B signed in without offline_access: its tokens live only as long as the session.
    const laptop = await signIn(running, { user, client: appB, scope: "openid email" });
    const phone = await signIn(running, { user, client: appB, scope: "openid email" });
    const offline = await signIn(running, { user, client: appA, browser: laptop.browser });
    t.not(laptop.sessionId, phone.sessionId, "two sessions");
    t.equal(laptop.refreshToken, undefined, "no refresh token without offline_access");
    const res = await w.revoker.delete(`/admin/v1/users/${user.id}/sessions`);
    t.equal(res.status, 204);
    t.equal(await authorizationOutcome(laptop.browser, appB), "sign-in", "the laptop has to sign in again");
    t.equal(await authorizationOutcome(phone.browser, appB), "sign-in", "so has the phone");
    await expectRevoked(t, w, laptop, "the laptop's session-bound tokens");
    await expectRevoked(t, w, phone, "the phone's session-bound tokens");
    // offline_access asks for access that outlives the session (OIDC Core
    // section 11); the README promises that after a revoking DELETE the
    // refresh token is refused, so signing out everywhere revokes the grants too.
    await expectRevoked(t, w, offline, "the offline_access grant");
  });

  t.test("DELETE /admin/v1/sessions/{id} ends one session and leaves the others", async (t) => {
    const user = await makeUser(running);
    const laptop = await signIn(running, { user, client: appB, scope: "openid email" });
    const phone = await signIn(running, { user, client: appB, scope: "openid email" });
    const res = await w.revoker.delete(`/admin/v1/sessions/${laptop.sessionId}`);
    t.equal(res.status, 204);
    t.equal(await authorizationOutcome(laptop.browser, appB), "sign-in", "the laptop has to sign in again");
    await expectRevoked(t, w, laptop, "the laptop's session-bound tokens");
    await expectActive(t, w, phone, "the phone's");
    t.equal(await authorizationOutcome(phone.browser, appB), "code", "and the phone is still signed in");
  });

  t.test("POST /admin/v1/revocations {user_id} revokes a user's grants and sessions, idempotently", async (t) => {
    const { a, b } = await userWithTwoApps();
    const other = await signIn(running, { client: appA });
    const first = await w.revoker.post("/admin/v1/revocations", { user_id: a.user.id });
    t.equal(first.status, 200);
    t.same(first.json, { revoked: { grants: 2, sessions: 1 } }, "reports the two grants and the session it removed");
    await expectRevoked(t, w, a, "App A");
    await expectRevoked(t, w, b, "App B");
    t.equal(await authorizationOutcome(a.browser, appA), "sign-in", "the session is over");
    await expectActive(t, w, other, "another user");
    const second = await w.revoker.post("/admin/v1/revocations", { user_id: a.user.id });
    t.same([second.status, second.json], [200, { revoked: { grants: 0, sessions: 0 } }], "a second call finds nothing left");
  });

  t.test("POST /admin/v1/revocations {client_id} revokes every grant of a compromised client", async (t) => {
    const compromised = await makeClient(running, { name: "Compromised app", firstParty: true });
    const first = await signIn(running, { client: compromised });
    const second = await signIn(running, { client: compromised });
    const elsewhere = await signIn(running, { client: appB, user: first.user, browser: first.browser });
    const res = await w.revoker.post("/admin/v1/revocations", { client_id: compromised.clientId });
    t.same([res.status, res.json], [200, { revoked: { grants: 2, sessions: 0 } }], "two grants; sessions belong to users, not clients");
    await expectRevoked(t, w, first, "the first user's grant");
    await expectRevoked(t, w, second, "the second user's grant");
    await expectActive(t, w, elsewhere, "the first user's grant to another app");
    t.equal(await authorizationOutcome(first.browser, appB), "code", "and their session");
    const again = await w.revoker.post("/admin/v1/revocations", { client_id: compromised.clientId });
    t.same(again.json, { revoked: { grants: 0, sessions: 0 } }, "idempotent");
  });

  t.test("POST /admin/v1/revocations {client_id} also revokes the client's own client_credentials tokens", async (t) => {
    const tool = await makeAdminClient(running, "admin:read", "Leaked tool");
    t.equal((await new AdminApi(running, tool.token).get("/admin/v1/users?limit=1")).status, 200, "its token works");
    const res = await w.revoker.post("/admin/v1/revocations", { client_id: tool.clientId });
    t.equal(res.status, 200);
    t.equal((await new AdminApi(running, tool.token).get("/admin/v1/users?limit=1")).status, 401, "then it does not");
  });

  t.test("POST /admin/v1/revocations {client_id, issued_before} leaves newer grants alone", async (t) => {
    const client = await makeClient(running, { name: "Rotated-secret app", firstParty: true });
    const older = await signIn(running, { client });
    await sleep(150);
    const cutoff = new Date();
    await sleep(150);
    const newer = await signIn(running, { client });
    const res = await w.revoker.post("/admin/v1/revocations", { client_id: client.clientId, issued_before: cutoff.toISOString() });
    t.same([res.status, res.json], [200, { revoked: { grants: 1, sessions: 0 } }], "one grant was issued before the cutoff");
    await expectRevoked(t, w, older, "the older grant");
    await expectActive(t, w, newer, "the newer grant");
    const again = await w.revoker.post("/admin/v1/revocations", { client_id: client.clientId, issued_before: cutoff.toISOString() });
    t.same(again.json, { revoked: { grants: 0, sessions: 0 } }, "idempotent");
  });

  t.test("POST /admin/v1/revocations {user_id, client_id} revokes only that user's grant to that client", async (t) => {
    const { a, b } = await userWithTwoApps();
    const res = await w.revoker.post("/admin/v1/revocations", { user_id: a.user.id, client_id: appA.clientId });
    t.same([res.status, res.json], [200, { revoked: { grants: 1, sessions: 0 } }]);
    await expectRevoked(t, w, a, "App A");
    await expectActive(t, w, b, "App B");
    t.equal(await authorizationOutcome(a.browser, appB), "code", "the session is kept");
  });

  t.test("POST /admin/v1/users/{id}/password revokes the user's sessions and grants", async (t) => {
    const { a, b } = await userWithTwoApps();
    const password = strongPassword();
    const res = await w.writer.post(`/admin/v1/users/${a.user.id}/password`, { password });
    t.equal(res.status, 204);
    await expectRevoked(t, w, a, "App A");
    await expectRevoked(t, w, b, "App B");
    t.equal(await authorizationOutcome(a.browser, appA), "sign-in", "the session is over");
    t.match(await trySignIn(w, appA, a.user.email, a.user.password), { status: 401, error: "Invalid email or password." }, "the old password no longer signs in");
    t.equal((await trySignIn(w, appA, a.user.email, password)).status, 303, "the new one does");
  });

  t.test("PATCH /admin/v1/users/{id} {disabled: true} revokes the user's sessions and grants", async (t) => {
    const { a, b } = await userWithTwoApps();
    const res = await w.writer.patch(`/admin/v1/users/${a.user.id}`, { disabled: true });
    t.equal(res.status, 200);
    t.equal(res.json.disabled, true);
    await expectRevoked(t, w, a, "App A");
    await expectRevoked(t, w, b, "App B");
    t.equal(await authorizationOutcome(a.browser, appA), "sign-in", "the session is over");
    t.match(await trySignIn(w, appA, a.user.email, a.user.password), { status: 401, error: "Invalid email or password." }, "and the user cannot sign in");
    const revoker = await w.revoker.patch(`/admin/v1/users/${a.user.id}`, { disabled: false });
    t.equal(revoker.status, 403, "(re-enabling needs admin:write, not admin:revoke)");
  });

  t.test("DELETE /admin/v1/users/{id} revokes the user's sessions and grants", async (t) => {
    const { a, b } = await userWithTwoApps();
    const res = await w.writer.delete(`/admin/v1/users/${a.user.id}`);
    t.equal(res.status, 204);
    await expectRevoked(t, w, a, "App A");
    await expectRevoked(t, w, b, "App B");
    t.equal(await authorizationOutcome(a.browser, appA), "sign-in", "the session is over");
  });

  t.test("DELETE /admin/v1/clients/{id} revokes everything issued to the client", async (t) => {
    const doomed = await makeClient(running, { name: "Retired app", firstParty: true });
    const first = await signIn(running, { client: doomed });
    const second = await signIn(running, { client: doomed });
    const elsewhere = await signIn(running, { client: appB, user: first.user, browser: first.browser });
    const res = await w.writer.delete(`/admin/v1/clients/${doomed.clientId}`);
    t.equal(res.status, 204);
    // The client itself is gone, so its refresh request fails client authentication.
    await expectRevoked(t, w, first, "the first user's tokens", /^invalid_(client|grant)$/);
    await expectRevoked(t, w, second, "the second user's tokens", /^invalid_(client|grant)$/);
    await expectActive(t, w, elsewhere, "the first user's tokens from another app");
  });
}

for (const provider of providers(t)) {
  t.test(`revocation through the admin API on ${provider}`, (t) => revocationSuite(t, provider));
}
