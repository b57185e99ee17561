/**
 * Attacks through a signed-in session on /account (docs/SECURITY.md): a
 * stolen session cookie must not be enough to add a way in (a passkey, a
 * password) or take one away; "Sign out other devices" must cut off what
 * those devices hold; and the page must show no text that a link's author
 * chose.
 */
import t, { type Test } from "tap";
import * as oidc from "openid-client";
import {
  Browser,
  authorizationUrl,
  csrfToken,
  isSignInPage,
  last,
  makeClient,
  makeUser,
  redeem,
  signInAndConsent,
  startApp,
  strongPassword,
  type TestUser,
} from "../helpers/http-flow.ts";

const running = await startApp(t, { env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
const { prisma } = running.db;

/** Opens /account in `browser`, signing in with the password when asked; returns the account page. */
async function openAccount(t: Test, browser: Browser, user: TestUser) {
  let page = last(await browser.follow("/account"));
  if (isSignInPage(page.body)) page = last(await browser.submit(page, { email: user.email, password: user.password }));
  t.equal(page.status, 200, "the account page answers 200");
  t.match(page.body, "Your account", "and it is the account page");
  return page;
}

/** Moves the last sign-in of every session of `userId` back by `seconds` (as if the cookie had been stolen later). */
async function ageSessions(userId: string, seconds: number) {
  for (const row of await prisma.oidcRecord.findMany({ where: { model: "Session", accountId: userId } })) {
    const payload = JSON.parse(row.payload) as { loginTs: number };
    payload.loginTs -= seconds;
    await prisma.oidcRecord.update({ where: { model_id: { model: row.model, id: row.id } }, data: { payload: JSON.stringify(payload) } });
  }
}

const postJson = (browser: Browser, path: string, csrf: string, body: unknown) => browser.request(path, { json: body, headers: { "x-csrf-token": csrf } });

t.test("a session older than REAUTH_MAX_AGE must sign in again before sensitive changes", async (t) => {
  t.equal(running.config.reauthMaxAge, 600, "REAUTH_MAX_AGE defaults to 10 minutes");
  const user = await makeUser(running);
  const browser = new Browser(running.url);
  const fresh = await openAccount(t, browser, user);
  t.notMatch(fresh.body, "you will be asked to sign in again", "a fresh sign-in is not warned");
  const passkey = await prisma.passkey.create({
    data: { id: `pk-${user.id}`, userId: user.id, credentialId: Buffer.from(user.id), publicKey: Buffer.from("not a key"), counter: 0n, deviceType: "singleDevice", backedUp: false, transports: "[]", name: "Old key" },
  });
  const { passwordHash } = await prisma.user.findUniqueOrThrow({ where: { id: user.id } });

  await ageSessions(user.id, 11 * 60);
  const page = last(await browser.follow("/account"));
  t.equal(page.status, 200, "the page itself still opens");
  t.match(page.body, "you will be asked to sign in again", "and says that changes need a new sign-in");
  const csrf = csrfToken(page.body);

  const challengesBefore = await prisma.webAuthnChallenge.count();
  const options = await postJson(browser, "/account/passkeys/options", csrf, {});
  t.equal(options.status, 401, "starting a passkey registration: 401");
  const body = JSON.parse(options.body) as { error: string; location: string };
  t.equal(body.error, "login_required");
  const location = new URL(body.location);
  t.equal(location.origin + location.pathname, `${running.url}/auth`, "with the sign-in to go through");
  t.equal(location.searchParams.get("prompt"), "login", "which asks for credentials even with a session");
  t.equal(location.searchParams.get("login_hint"), user.email);
  t.equal(await prisma.webAuthnChallenge.count(), challengesBefore, "no challenge was written");

  const registration = await postJson(browser, "/account/passkeys", csrf, { challengeId: "x", response: { id: "a", rawId: "a", type: "public-key", response: { clientDataJSON: "a", attestationObject: "a" }, clientExtensionResults: {} } });
  t.equal(registration.status, 401, "finishing a passkey registration: 401");

  const setPassword = await browser.request("/account/password", { form: { csrf, current_password: user.password, new_password: strongPassword() } });
  t.equal(setPassword.status, 303, "changing the password, even with the current one, is sent to sign in");
  t.equal(setPassword.location?.searchParams.get("prompt"), "login");
  t.equal((await prisma.user.findUniqueOrThrow({ where: { id: user.id } })).passwordHash, passwordHash, "the password is unchanged");

  const remove = await browser.request(`/account/passkeys/${passkey.id}/remove`, { form: { csrf } });
  t.equal(remove.status, 303, "removing a passkey is sent to sign in");
  t.equal(remove.location?.searchParams.get("prompt"), "login");
  t.equal(await prisma.passkey.count({ where: { id: passkey.id } }), 1, "the passkey is still there");

  // Signing in again (the email is filled in from login_hint) makes the session recent.
  const signIn = last(await browser.follow(remove.location!));
  t.ok(isSignInPage(signIn.body), "the sign-in page asks again");
  t.match(signIn.body, `value="${user.email}"`, "with the email filled in");
  const back = last(await browser.submit(signIn, { email: user.email, password: user.password }));
  t.equal(back.url.pathname, "/account", "and comes back to /account");
  t.notMatch(back.body, "you will be asked to sign in again");
  const changed = await browser.request("/account/password", { form: { csrf: csrfToken(back.body), current_password: user.password, new_password: strongPassword() } });
  t.equal(changed.location?.href, `${running.url}/account?notice=password-changed`, "now the change goes through");
  t.not((await prisma.user.findUniqueOrThrow({ where: { id: user.id } })).passwordHash, passwordHash, "and the password changed");
});

t.test("/account shows no text taken from its URL", async (t) => {
  const user = await makeUser(running);
  const browser = new Browser(running.url);
  await openAccount(t, browser, user);
  const bait = "Your account is suspended. Call +1 555 0100 to restore it";
  for (const query of [`error=${encodeURIComponent(bait)}`, `notice=${encodeURIComponent(bait)}`, "notice=__proto__", "notice=toString"]) {
    const page = await browser.request(`/account?${query}`);
    t.equal(page.status, 200, `?${query.slice(0, 20)}...: 200`);
    t.notMatch(page.body, "suspended", "the bait is not shown");
    t.notMatch(page.body, /role="(status|alert)">/, "and no notice or error at all");
  }
  const known = await browser.request("/account?notice=signed-out-others");
  t.match(known.body, "Your other devices were signed out.", "a known notice code still shows its text");
});

t.test("Sign out other devices revokes the grants those devices hold, and keeps this device's", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { name: "Mail app" });
  const devices = [new Browser(running.url), new Browser(running.url)];
  const tokens = [];
  for (const device of devices) {
    const pending = await authorizationUrl(client, { scope: "openid offline_access", prompt: "consent" });
    tokens.push(await redeem(client, await signInAndConsent(device, pending, user), pending));
  }
  t.ok(tokens.every((x) => x.refresh_token), "each device holds a refresh token");

  const page = await openAccount(t, devices[0]!, user);
  const res = await devices[0]!.request("/account/sessions/sign-out-others", { form: { csrf: csrfToken(page.body) } });
  t.equal(res.status, 303);

  await t.rejects(oidc.refreshTokenGrant(client.config, tokens[1]!.refresh_token!), { error: "invalid_grant" } as object as Error, "the other device's refresh token is refused");
  const introspected = await oidc.tokenIntrospection(client.config, tokens[1]!.access_token);
  t.equal(introspected.active, false, "its access token is no longer active");
  const mine = await oidc.refreshTokenGrant(client.config, tokens[0]!.refresh_token!);
  t.ok(mine.access_token, "this device's grant still refreshes");
  t.equal((await devices[0]!.request("/account")).status, 200, "and this device is still signed in");
  t.equal((await devices[1]!.request("/account")).status, 303, "the other one is not");
});
