/**
 * Passkey ceremonies refused at the verification endpoints (README):
 * a software authenticator (test/helpers/soft-authenticator.ts) sends the
 * responses a real authenticator never would, over real HTTP to the app built
 * in-process and listening on 127.0.0.1. The issuer is http://localhost:<port>
 * because a WebAuthn RP ID must be a domain, not an IP address. Every refusal
 * must be a 4xx that writes nothing but its audit event: no passkey row, no
 * counter change, no session.
 */
import t, { type Test } from "tap";
import { finishPasskeyRegistration, startPasskeyRegistration } from "../../src/services/passkeys.ts";
import { findUserById } from "../../src/db/users.ts";
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from "@simplewebauthn/server";
import {
  Browser,
  authorizationUrl,
  isConsentPage,
  isSignInPage,
  last,
  makeClient,
  makeUser,
  captureLogs,
  type LogLine,
  type TestClient,
  type TestUser,
} from "../helpers/http-flow.ts";
import { SoftAuthenticator, flags } from "../helpers/soft-authenticator.ts";
import { startPasskeyApp as startBasePasskeyApp, type PasskeyApp as BasePasskeyApp } from "../helpers/passkey-app.ts";

interface PasskeyApp extends BasePasskeyApp {
  /** Warnings and errors the app logged (pino lines, parsed). */
  logs: LogLine[];
}

/** The passkey app (helpers/passkey-app.ts) with its warnings captured. */
async function startPasskeyApp(t: Test, env: Record<string, string> = {}): Promise<PasskeyApp> {
  const { logs, logger } = captureLogs("warn");
  return { ...(await startBasePasskeyApp(t, env, logger)), logs };
}

interface JsonResponse {
  status: number;
  json: Record<string, unknown>;
}

/** A JSON POST with the browser's cookies, as the pages' scripts send it. */
async function postJson(browser: Browser, path: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  const url = new URL(path, browser.origin);
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "user-agent": "gatehouse-tests", cookie: browser.jar.header(url), ...headers },
    body: JSON.stringify(body),
    redirect: "manual",
  });
  browser.jar.store(url, res.headers.getSetCookie());
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

interface SignInPage {
  browser: Browser;
  uid: string;
  /** The interaction's CSRF token, from the passkey button's data-csrf. */
  csrf: string;
}

/** An authorization request (openid-client, PKCE) up to the sign-in page. */
async function openSignIn(t: Test, running: PasskeyApp, client: TestClient): Promise<SignInPage> {
  const browser = new Browser(running.url);
  const page = last(await browser.follow((await authorizationUrl(client)).url));
  t.ok(isSignInPage(page.body), "the authorization request shows the sign-in page");
  const uid = /^\/interaction\/([^/]+)$/.exec(page.url.pathname)?.[1];
  const csrf = /id="passkey-sign-in" data-uid="[^"]*" data-csrf="([^"]+)"/.exec(page.body)?.[1];
  if (!uid || !csrf) throw new Error(`not a sign-in page with a passkey button: ${page.url.href}`);
  return { browser, uid, csrf };
}

async function authenticationOptions(t: Test, signIn: SignInPage, headers: Record<string, string> = {}) {
  const res = await postJson(signIn.browser, `/interaction/${signIn.uid}/passkey/options`, {}, { "x-csrf-token": signIn.csrf, ...headers });
  t.equal(res.status, 200, "passkey options are issued");
  return res.json as { challengeId: string; options: PublicKeyCredentialRequestOptionsJSON };
}

function sendAssertion(signIn: SignInPage, body: unknown, headers: Record<string, string> = {}) {
  return postJson(signIn.browser, `/interaction/${signIn.uid}/passkey`, body, { "x-csrf-token": signIn.csrf, ...headers });
}

/** A session on /account (signed in with the password through the account client); returns its CSRF token. */
async function openAccount(t: Test, running: PasskeyApp, user: TestUser) {
  const browser = new Browser(running.url);
  let page = last(await browser.follow("/account"));
  t.ok(isSignInPage(page.body), "/account without a session asks to sign in");
  page = last(await browser.submit(page, { email: user.email, password: user.password }));
  t.equal(page.url.pathname, "/account", "and comes back to /account");
  const csrf = /id="add-passkey" data-csrf="([^"]+)"/.exec(page.body)?.[1];
  if (page.status !== 200 || !csrf) throw new Error(`not the account page: ${page.status} ${page.body.slice(0, 300)}`);
  return { browser, csrf };
}

async function registrationOptions(t: Test, account: { browser: Browser; csrf: string }) {
  const res = await postJson(account.browser, "/account/passkeys/options", {}, { "x-csrf-token": account.csrf });
  t.equal(res.status, 200, "registration options are issued");
  return res.json as { challengeId: string; options: PublicKeyCredentialCreationOptionsJSON };
}

function sendRegistration(account: { browser: Browser; csrf: string }, body: unknown) {
  return postJson(account.browser, "/account/passkeys", body, { "x-csrf-token": account.csrf });
}

/** Registers a soft authenticator for `user` through the same service the account page calls. */
async function registerPasskey(running: PasskeyApp, user: TestUser): Promise<SoftAuthenticator> {
  const row = (await findUserById(running.db.prisma, user.id))!;
  const { challengeId, options } = await startPasskeyRegistration(running.db, running.rp, row);
  const authenticator = new SoftAuthenticator(running.url);
  await finishPasskeyRegistration(running.db, running.rp, row, { challengeId, response: authenticator.register(options) }, { ip: "127.0.0.1", userAgent: "tests" });
  return authenticator;
}

/** What a refused ceremony must leave unchanged. */
async function storedState(running: PasskeyApp) {
  const prisma = running.db.prisma;
  const passkeys = await prisma.passkey.findMany({ orderBy: { id: "asc" }, select: { id: true, userId: true, counter: true, lastUsedAt: true } });
  return {
    passkeys: passkeys.map((p) => ({ ...p, counter: String(p.counter), lastUsedAt: p.lastUsedAt?.toISOString() ?? null })),
    signedInSessions: await prisma.oidcRecord.count({ where: { model: "Session", accountId: { not: null } } }),
    signInsSucceeded: await prisma.auditEvent.count({ where: { type: "sign_in.succeeded" } }),
    passkeysAdded: await prisma.auditEvent.count({ where: { type: "passkey.added" } }),
  };
}

const lastAuditSeq = async (running: PasskeyApp) => (await running.db.prisma.auditEvent.aggregate({ _max: { seq: true } }))._max.seq ?? 0;


/**
 * Sends an assertion that must be refused: a 4xx, nothing stored, the
 * interaction still at its sign-in page, and one sign_in.failed audit event
 * with method passkey and `reason`.
 */
async function expectSignInRefused(
  t: Test,
  running: PasskeyApp,
  signIn: SignInPage,
  body: unknown,
  expected: { reason: string; userId?: string; status?: number },
): Promise<void> {
  const before = await storedState(running);
  const seq = await lastAuditSeq(running);
  const res = await sendAssertion(signIn, body);
  t.equal(res.status, expected.status ?? 400, `refused with ${expected.status ?? 400}`);
  t.equal(res.json.redirectTo, undefined, "no redirect to continue the flow");
  t.equal(res.json.error_description, "This passkey could not be used to sign in.", "with the page's message");
  t.same(await storedState(running), before, "nothing stored: passkeys and counters unchanged, no session, no success audit");
  const events = await running.db.prisma.auditEvent.findMany({ where: { seq: { gt: seq } }, orderBy: { seq: "asc" } });
  t.same(events.map((e) => e.type), ["sign_in.failed"], "one sign_in.failed audit event");
  if (events[0]) {
    t.same(JSON.parse(events[0].data), { method: "passkey", reason: expected.reason }, `audited with method passkey and reason ${expected.reason}`);
    t.equal(events[0].userId, expected.userId ?? null, expected.userId ? "about the passkey's owner" : "about no user");
  }
  const page = await signIn.browser.request(`/interaction/${signIn.uid}`);
  t.ok(isSignInPage(page.body), "the interaction still asks to sign in");
}

/** Sends a registration that must be refused: a 4xx and no passkey written. */
async function expectRegistrationRefused(
  t: Test,
  running: PasskeyApp,
  account: { browser: Browser; csrf: string },
  body: unknown,
  expected: { status?: number } = {},
): Promise<void> {
  const before = await storedState(running);
  const res = await sendRegistration(account, body);
  const said = res.status < 300 ? "stored" : String(res.json.error_description);
  t.equal(res.status, expected.status ?? 400, `refused with ${expected.status ?? 400} (got ${res.status}: ${said})`);
  t.same(await storedState(running), before, "no passkey stored, no passkey.added audit");
}

const running = await startPasskeyApp(t, { SIGNIN_MAX_FAILURES: "1000", SIGNIN_MAX_FAILURES_PER_IP: "100000" });
const client = await makeClient(running, { name: "Passkey tests" });

t.test("a correct assertion signs in: 200 {redirectTo}, the counter grows, a session follows", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const [stored] = await running.db.prisma.passkey.findMany({ where: { userId: user.id } });
  t.equal(stored?.counter, 0n, "registered with counter 0");
  t.same(Buffer.from(stored!.credentialId), authenticator.credentialId, "the credential id is stored as bytes");

  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  t.equal(options.rpId, "localhost", "the RP ID is the issuer's host name");
  t.same(options.allowCredentials ?? [], [], "no allowCredentials: discoverable credentials, no email needed");
  const seq = await lastAuditSeq(running);
  const res = await sendAssertion(signIn, { challengeId, response: authenticator.assert(options) });
  t.equal(res.status, 200);
  t.match(res.json.redirectTo, new RegExp(`^${running.url}/auth/`), "redirectTo resumes the authorization on the issuer");

  const after = await running.db.prisma.passkey.findUniqueOrThrow({ where: { id: stored!.id } });
  t.equal(after.counter, 1n, "the stored counter grew to the authenticator's");
  t.ok(after.lastUsedAt, "last use recorded");
  const events = await running.db.prisma.auditEvent.findMany({ where: { seq: { gt: seq } } });
  t.same(
    events.map((e) => ({ type: e.type, userId: e.userId, data: JSON.parse(e.data) as unknown })),
    [{ type: "sign_in.succeeded", userId: user.id, data: { method: "passkey", passkey_id: stored!.id } }],
    "one sign_in.succeeded audit event, method passkey",
  );
  t.equal(await running.db.prisma.webAuthnChallenge.count({ where: { id: challengeId } }), 0, "the challenge is deleted once used");

  const page = last(await signIn.browser.follow(String(res.json.redirectTo)));
  t.ok(isConsentPage(page.body), "the flow continues to consent, signed in");
  t.equal(await running.db.prisma.oidcRecord.count({ where: { model: "Session", accountId: user.id } }), 1, "a session for the passkey's owner");
});

t.test("a challenge is single-use: replayed after a success it is refused", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  t.equal((await sendAssertion(signIn, { challengeId, response: authenticator.assert(options) })).status, 200, "first use signs in");
  // A fresh signature over the same challenge (counter 2): only the challenge can refuse it.
  await expectSignInRefused(t, running, signIn, { challengeId, response: authenticator.assert(options) }, { reason: "challenge_invalid" });
  const stored = await running.db.prisma.passkey.findFirstOrThrow({ where: { userId: user.id } });
  t.equal(stored.counter, 1n, "the counter is the first assertion's");
});

t.test("a challenge is single-use: replayed after a failure it is refused", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  await expectSignInRefused(
    t,
    running,
    signIn,
    { challengeId, response: authenticator.assert(options, { origin: "http://evil.example" }) },
    { reason: "verification_failed", userId: user.id },
  );
  await expectSignInRefused(t, running, signIn, { challengeId, response: authenticator.assert(options) }, { reason: "challenge_invalid" });
});

t.test("an expired challenge is refused", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  const challenge = await running.db.prisma.webAuthnChallenge.findUniqueOrThrow({ where: { id: challengeId } });
  t.ok(Math.abs(challenge.expiresAt.getTime() - Date.now() - 5 * 60_000) < 30_000, "challenges expire in 5 minutes");
  await running.db.prisma.webAuthnChallenge.update({ where: { id: challengeId }, data: { expiresAt: new Date(Date.now() - 1000) } });
  await expectSignInRefused(t, running, signIn, { challengeId, response: authenticator.assert(options) }, { reason: "challenge_invalid" });
});

t.test("a challenge issued to another interaction is refused", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const first = await openSignIn(t, running, client);
  const second = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, first);
  await expectSignInRefused(t, running, second, { challengeId, response: authenticator.assert(options) }, { reason: "challenge_invalid" });
});

t.test("a wrong origin in clientDataJSON is refused", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  const origin = running.url.replace("localhost", "evil.localhost");
  await expectSignInRefused(t, running, signIn, { challengeId, response: authenticator.assert(options, { origin }) }, { reason: "verification_failed", userId: user.id });
});

t.test("a wrong RP ID (authenticator data hashed for another domain) is refused", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  await expectSignInRefused(
    t,
    running,
    signIn,
    { challengeId, response: authenticator.assert(options, { rpId: "evil.example" }) },
    { reason: "verification_failed", userId: user.id },
  );
});

t.test("a wrong ceremony type (webauthn.create in an assertion) is refused", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  await expectSignInRefused(
    t,
    running,
    signIn,
    { challengeId, response: authenticator.assert(options, { type: "webauthn.create" }) },
    { reason: "verification_failed", userId: user.id },
  );
});

t.test("an assertion without user presence is refused", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  await expectSignInRefused(
    t,
    running,
    signIn,
    { challengeId, response: authenticator.assert(options, { flags: flags.userVerified }) },
    { reason: "verification_failed", userId: user.id },
  );
});

t.test("a signature by another key is refused", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  // Same credential id and user handle, different private key.
  const impostor = new SoftAuthenticator(running.url, { credentialId: authenticator.credentialId });
  impostor.userHandle = authenticator.userHandle;
  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  await expectSignInRefused(t, running, signIn, { challengeId, response: impostor.assert(options) }, { reason: "verification_failed", userId: user.id });
});

t.test("an unknown credential id is refused", async (t) => {
  const user = await makeUser(running);
  const registered = await registerPasskey(running, user);
  const stranger = new SoftAuthenticator(running.url);
  // It claims to be the registered user's authenticator, but its credential was never registered.
  stranger.userHandle = registered.userHandle;
  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  await expectSignInRefused(t, running, signIn, { challengeId, response: stranger.assert(options) }, { reason: "unknown_credential" });
});

t.test("a credential presented with another user's handle is refused", async (t) => {
  const [alice, bob] = await Promise.all([makeUser(running), makeUser(running)]);
  const alicePasskey = await registerPasskey(running, alice);
  const bobPasskey = await registerPasskey(running, bob);
  t.not(alicePasskey.userHandle, bobPasskey.userHandle);
  const signIn = await openSignIn(t, running, client);
  const { challengeId, options } = await authenticationOptions(t, signIn);
  await expectSignInRefused(
    t,
    running,
    signIn,
    { challengeId, response: alicePasskey.assert(options, { userHandle: bobPasskey.userHandle }) },
    { reason: "user_handle_mismatch", userId: alice.id },
  );
});

t.test("a counter that does not grow is refused as a possible clone, and logged", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  authenticator.counter = 41;
  const first = await openSignIn(t, running, client);
  const start = await authenticationOptions(t, first);
  t.equal((await sendAssertion(first, { challengeId: start.challengeId, response: authenticator.assert(start.options) })).status, 200, "signs in with counter 42");
  const passkey = await running.db.prisma.passkey.findFirstOrThrow({ where: { userId: user.id } });
  t.equal(passkey.counter, 42n);

  for (const counter of [7, 42]) {
    const signIn = await openSignIn(t, running, client);
    const { challengeId, options } = await authenticationOptions(t, signIn);
    const logged = running.logs.length;
    await expectSignInRefused(
      t,
      running,
      signIn,
      { challengeId, response: authenticator.assert(options, { counter }) },
      { reason: "counter_not_increased", userId: user.id },
    );
    const warnings = running.logs.slice(logged).filter((l) => l.level === 40);
    t.match(warnings, [{ msg: /counter went backwards/, passkeyId: passkey.id, userId: user.id, storedCounter: "42" }], `counter ${counter} after 42: a warning is logged`);
  }
  t.equal((await running.db.prisma.passkey.findUniqueOrThrow({ where: { id: passkey.id } })).counter, 42n, "the stored counter stays 42");
});

t.test("a passkey request without the interaction's CSRF token is refused with 403", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const signIn = await openSignIn(t, running, client);
  const missing = await postJson(signIn.browser, `/interaction/${signIn.uid}/passkey/options`, {});
  t.equal(missing.status, 403, "options without x-csrf-token: 403");
  const { challengeId, options } = await authenticationOptions(t, signIn);
  const before = await storedState(running);
  const other = await openSignIn(t, running, client);
  const res = await sendAssertion(signIn, { challengeId, response: authenticator.assert(options) }, { "x-csrf-token": other.csrf });
  t.equal(res.status, 403, "an assertion with another interaction's token: 403");
  t.same(await storedState(running), before, "nothing stored");
});

t.test("registration: a challenge issued to another user is refused", async (t) => {
  const [alice, bob] = await Promise.all([makeUser(running), makeUser(running)]);
  const [aliceAccount, bobAccount] = await Promise.all([openAccount(t, running, alice), openAccount(t, running, bob)]);
  const bobStart = await registrationOptions(t, bobAccount);
  const authenticator = new SoftAuthenticator(running.url);
  await expectRegistrationRefused(t, running, aliceAccount, { challengeId: bobStart.challengeId, response: authenticator.register(bobStart.options) });
  t.equal(await running.db.prisma.passkey.count({ where: { userId: { in: [alice.id, bob.id] } } }), 0, "neither user has a passkey");
});

t.test("registration: a wrong origin is refused", async (t) => {
  const user = await makeUser(running);
  const account = await openAccount(t, running, user);
  const { challengeId, options } = await registrationOptions(t, account);
  t.equal(options.rp.id, "localhost");
  const origin = running.url.replace("localhost", "evil.localhost");
  await expectRegistrationRefused(t, running, account, { challengeId, response: new SoftAuthenticator(running.url).register(options, { origin }) });
});

t.test("registration: a wrong RP ID is refused", async (t) => {
  const user = await makeUser(running);
  const account = await openAccount(t, running, user);
  const { challengeId, options } = await registrationOptions(t, account);
  await expectRegistrationRefused(t, running, account, { challengeId, response: new SoftAuthenticator(running.url).register(options, { rpId: "evil.example" }) });
});

t.test("registration: an expired challenge is refused", async (t) => {
  const user = await makeUser(running);
  const account = await openAccount(t, running, user);
  const { challengeId, options } = await registrationOptions(t, account);
  await running.db.prisma.webAuthnChallenge.update({ where: { id: challengeId }, data: { expiresAt: new Date(Date.now() - 1000) } });
  await expectRegistrationRefused(t, running, account, { challengeId, response: new SoftAuthenticator(running.url).register(options) });
});

t.test("registration: a challenge replayed after a success is refused", async (t) => {
  const user = await makeUser(running);
  const account = await openAccount(t, running, user);
  const { challengeId, options } = await registrationOptions(t, account);
  const created = await sendRegistration(account, { challengeId, response: new SoftAuthenticator(running.url).register(options) });
  t.equal(created.status, 201, "the first registration is stored");
  const [row] = await running.db.prisma.passkey.findMany({ where: { userId: user.id } });
  t.equal(row?.counter, 0n, "with the authenticator's counter");
  await expectRegistrationRefused(t, running, account, { challengeId, response: new SoftAuthenticator(running.url).register(options) });
  t.equal(await running.db.prisma.passkey.count({ where: { userId: user.id } }), 1, "one passkey only");
});

t.test("registration: a credential already registered is refused with 409", async (t) => {
  const user = await makeUser(running);
  const account = await openAccount(t, running, user);
  const authenticator = new SoftAuthenticator(running.url);
  const first = await registrationOptions(t, account);
  t.equal((await sendRegistration(account, { challengeId: first.challengeId, response: authenticator.register(first.options) })).status, 201, "the first registration is stored");
  const second = await registrationOptions(t, account);
  t.same(
    second.options.excludeCredentials?.map((c) => c.id),
    [authenticator.id],
    "the next options exclude the registered credential",
  );
  await expectRegistrationRefused(t, running, account, { challengeId: second.challengeId, response: authenticator.register(second.options) }, { status: 409 });
});

t.test("registration: a challenge replayed after a failure is refused", async (t) => {
  const user = await makeUser(running);
  const account = await openAccount(t, running, user);
  const { challengeId, options } = await registrationOptions(t, account);
  const origin = running.url.replace("localhost", "evil.localhost");
  await expectRegistrationRefused(t, running, account, { challengeId, response: new SoftAuthenticator(running.url).register(options, { origin }) });
  await expectRegistrationRefused(
    t,
    running,
    account,
    { challengeId, response: new SoftAuthenticator(running.url).register(options) },
  );
});

t.test("passkey failures without a known user do not lock every user out of passkey sign-in", async (t) => {
  // Default limits (5 failures per account per window); client addresses from X-Forwarded-For.
  const limited = await startPasskeyApp(t, { TRUST_PROXY: "true" });
  const limitedClient = await makeClient(limited, { name: "Lockout tests" });
  const user = await makeUser(limited);
  const authenticator = await registerPasskey(limited, user);
  const attacker = { "x-forwarded-for": "203.0.113.9" };
  for (let i = 0; i < 5; i++) {
    const signIn = await openSignIn(t, limited, limitedClient);
    const { challengeId, options } = await authenticationOptions(t, signIn, attacker);
    const res = await sendAssertion(signIn, { challengeId, response: new SoftAuthenticator(limited.url).assert(options) }, attacker);
    t.equal(res.status, 400, `unknown credential ${i + 1} from 203.0.113.9 is refused`);
  }
  const victim = { "x-forwarded-for": "198.51.100.7" };
  const signIn = await openSignIn(t, limited, limitedClient);
  const { challengeId, options } = await authenticationOptions(t, signIn, victim);
  const res = await sendAssertion(signIn, { challengeId, response: authenticator.assert(options) }, victim);
  t.equal(res.status, 200, `another user from another address still signs in with a passkey (got ${res.status} ${String(res.json.error ?? "")})`);
});
