/**
 * A copy of the database gives no working credential: after a code flow with
 * a refresh token (also through a pushed authorization request), a
 * client_credentials token and signed-in sessions, no authorization code,
 * access or refresh token, PAR request id or cookie value (`_session`,
 * `_interaction`, `_interaction_resume`) appears anywhere in the database:
 * not in the SQLite file's raw bytes (with its -wal and -journal), not in any
 * row of any PostgreSQL table. The database keeps keyed hashes (HMAC with a
 * key derived from the master key), and every flow still works on top of them.
 */
import { existsSync, readFileSync } from "node:fs";
import t, { type Test } from "tap";
import { sqlitePath, type DatabaseProvider } from "../../src/db/database.ts";
import { createClient } from "../../src/services/clients.ts";
import { providers } from "../helpers/databases.ts";
import {
  Browser,
  authorizationUrl,
  csrfToken,
  formAction,
  isSignInPage,
  last,
  makeClient,
  makeUser,
  redirectUri,
  signInAndConsent,
  startApp,
  tokenRequest,
  type RunningApp,
  type TestClient,
} from "../helpers/http-flow.ts";

const parUrnPrefix = "urn:ietf:params:oauth:request_uri:";

/** Every cookie value Gatehouse set in `browser` (the `.sig` signatures included). */
function cookieValues(browser: Browser): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of browser.jar.received) {
    const pair = line.split(";")[0]!;
    const name = pair.slice(0, pair.indexOf("="));
    const value = pair.slice(pair.indexOf("=") + 1);
    if (value) values.set(`${name}=${value}`, value);
  }
  return values;
}

/** Everything the database holds, as bytes: the SQLite files, or every row of every PostgreSQL table as text. */
async function databaseContents(running: RunningApp, provider: DatabaseProvider): Promise<Buffer> {
  if (provider === "sqlite") {
    const file = sqlitePath(running.config.databaseUrl);
    const files = [file, `${file}-wal`, `${file}-journal`].filter((f) => existsSync(f));
    return Buffer.concat(files.map((f) => readFileSync(f)));
  }
  const { prisma } = running.db;
  const tables = await prisma.$queryRawUnsafe<{ table_name: string }[]>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`,
  );
  const dumps: string[] = [];
  for (const { table_name } of tables) {
    const rows = await prisma.$queryRawUnsafe<{ row: string }[]>(`SELECT t::text AS row FROM "${table_name}" t`);
    dumps.push(...rows.map((r) => `${table_name}: ${r.row}`));
  }
  return Buffer.from(dumps.join("\n"), "utf8");
}

/** Pushes the authorization request (RFC 9126) and returns the /auth URL that names it. */
async function pushAuthorizationRequest(running: RunningApp, client: TestClient, url: URL): Promise<{ url: URL; requestUri: string }> {
  const res = await fetch(`${running.url}/request`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: url.searchParams,
  });
  const body = (await res.json()) as { request_uri?: string };
  if (res.status !== 201 || !body.request_uri) throw new Error(`PAR refused: ${res.status} ${JSON.stringify(body)}`);
  const auth = new URL("/auth", running.url);
  auth.search = new URLSearchParams({ client_id: client.clientId, request_uri: body.request_uri }).toString();
  return { url: auth, requestUri: body.request_uri };
}

async function storedCredentialsSuite(t: Test, provider: DatabaseProvider): Promise<void> {
  const running = await startApp(t, { provider, env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
  const user = await makeUser(running);
  const client = await makeClient(running, { name: "Stored credentials app" });
  const browser = new Browser(running.url);
  const secrets = new Map<string, string>();

  // 1. A code flow with consent; on the sign-in page, a passkey challenge is
  //    started for the interaction (WebAuthnChallenge.interactionUid).
  const pending = await authorizationUrl(client, { scope: "openid email offline_access", prompt: "consent" });
  const signInPage = last(await browser.follow(pending.url));
  t.ok(isSignInPage(signInPage.body), "the sign-in page");
  const uid = /\/interaction\/([^/]+)\/login/.exec(formAction(signInPage.body))![1]!;
  const options = await browser.request(`/interaction/${uid}/passkey/options`, { json: {}, headers: { "x-csrf-token": csrfToken(signInPage.body) } });
  t.equal(options.status, 200, "a passkey challenge for the interaction");
  const callback = await signInAndConsent(browser, pending, user);
  const code = callback.searchParams.get("code")!;
  const issued = await tokenRequest(running, client, { grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: pending.codeVerifier });
  t.equal(issued.status, 200, "the code is redeemed");
  const refreshed = await tokenRequest(running, client, { grant_type: "refresh_token", refresh_token: String(issued.json.refresh_token) });
  t.equal(refreshed.status, 200, "the refresh token is rotated");
  secrets.set("interaction uid", uid);
  secrets.set("authorization code", code);
  secrets.set("access token", String(issued.json.access_token));
  secrets.set("refresh token (rotated out)", String(issued.json.refresh_token));
  secrets.set("access token (from refresh)", String(refreshed.json.access_token));
  secrets.set("refresh token", String(refreshed.json.refresh_token));

  // 2. The same through a pushed authorization request: the interaction refers to it.
  const parPending = await authorizationUrl(client, { scope: "openid email offline_access", prompt: "consent" });
  const pushed = await pushAuthorizationRequest(running, client, parPending.url);
  const parCallback = await signInAndConsent(browser, { ...parPending, url: pushed.url }, user);
  const parIssued = await tokenRequest(running, client, {
    grant_type: "authorization_code",
    code: parCallback.searchParams.get("code")!,
    redirect_uri: redirectUri,
    code_verifier: parPending.codeVerifier,
  });
  t.equal(parIssued.status, 200, "the PAR flow's code is redeemed");
  secrets.set("PAR request id", pushed.requestUri.slice(parUrnPrefix.length));
  secrets.set("authorization code (PAR)", parCallback.searchParams.get("code")!);
  secrets.set("access token (PAR)", String(parIssued.json.access_token));
  secrets.set("refresh token (PAR)", String(parIssued.json.refresh_token));

  // 3. A client_credentials token for the admin API.
  const service = await createClient(running.db, running.ring, { name: "Service", grantTypes: ["client_credentials"], scope: "admin:read admin:revoke", redirectUris: [] });
  const serviceAuth = { clientId: service.client_id, clientSecret: service.client_secret! };
  const adminToken = await tokenRequest(running, serviceAuth, { grant_type: "client_credentials", scope: "admin:read admin:revoke" });
  t.equal(adminToken.status, 200, "an admin token");
  secrets.set("client_credentials token", String(adminToken.json.access_token));

  // 4. A second device signed in as the same user.
  const phone = new Browser(running.url);
  await signInAndConsent(phone, await authorizationUrl(client, { scope: "openid email" }), user);

  for (const [name, value] of [...cookieValues(browser), ...cookieValues(phone)]) secrets.set(`cookie ${name}`, value);
  for (const name of ["_session", "_interaction", "_interaction_resume"]) {
    t.ok([...secrets.keys()].some((k) => k.startsWith(`cookie ${name}=`)), `the flow set a ${name} cookie`);
  }

  t.test("no credential appears anywhere in the database", async (t) => {
    const contents = await databaseContents(running, provider);
    t.ok(contents.includes(user.email), `the dump is readable: it holds the user's email (${contents.length} bytes)`);
    t.ok(await running.db.prisma.oidcRecord.count({ where: { model: "Session", accountId: user.id } }), "session rows exist");
    t.ok(await running.db.prisma.oidcRecord.count({ where: { model: "RefreshToken" } }), "refresh token rows exist");
    t.ok(await running.db.prisma.webAuthnChallenge.count(), "the passkey challenge row exists");
    for (const [name, value] of secrets) {
      t.ok(value.length >= 16, `${name} is a real value`);
      t.notOk(contents.includes(value), `${name} is not stored`);
    }
  });

  t.test("and every credential still works", async (t) => {
    const userinfo = await fetch(`${running.url}/me`, { headers: { authorization: `Bearer ${secrets.get("access token (from refresh)")}` } });
    t.equal(userinfo.status, 200, "the access token reaches userinfo");
    const again = await tokenRequest(running, client, { grant_type: "refresh_token", refresh_token: secrets.get("refresh token (PAR)")! });
    t.equal(again.status, 200, "a refresh token refreshes");
    const introspection = await fetch(`${running.url}/token/introspection`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(serviceAuth.clientId)}:${encodeURIComponent(serviceAuth.clientSecret)}`).toString("base64")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ token: secrets.get("client_credentials token")! }),
    });
    t.match(await introspection.json(), { active: true }, "the client_credentials token introspects as active");
    const users = await fetch(`${running.url}/admin/v1/users/${user.id}/sessions`, { headers: { authorization: `Bearer ${secrets.get("client_credentials token")}` } });
    t.equal(users.status, 200, "the admin token reaches the admin API");
    const listed = ((await users.json()) as { items: { id: string }[] }).items.map((s) => s.id).sort();
    const rows = await running.db.prisma.oidcRecord.findMany({ where: { model: "Session", accountId: user.id }, select: { id: true } });
    t.same(listed, rows.map((r) => r.id).sort(), "it lists the user's two sessions by their stored ids");
    t.equal(listed.length, 2);
    t.notOk(listed.some((id) => [...secrets.values()].includes(id)), "which are not the cookie values");

    const account = await browser.request("/account");
    t.equal(account.status, 200, "the session cookie still signs in to /account");
    t.equal(account.body.match(/\(this device\)/g)?.length, 1, "the account page marks exactly one session as this device");

    const signOut = await browser.request("/account/sessions/sign-out-others", { form: { csrf: csrfToken(account.body) } });
    t.equal(signOut.status, 303);
    t.equal((await browser.request("/account")).status, 200, "signing out the other devices keeps this session");
    t.equal((await phone.request("/account")).status, 303, "and ends the phone's, which must sign in again");
    t.equal(await running.db.prisma.oidcRecord.count({ where: { model: "Session", accountId: user.id } }), 1, "one session row left");
  });
}

for (const provider of providers(t)) {
  t.test(provider, async (t) => storedCredentialsSuite(t, provider));
}
