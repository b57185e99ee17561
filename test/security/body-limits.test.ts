/**
 * Every field of every JSON and form body has a type and a maximum size, and
 * a body that breaks its schema is refused with 400 before any work is done
 * (OWASP Input Validation Cheat Sheet; WebAuthn Level 3, section 5.1, for the
 * JSON shape of the passkey responses). "Before any work": the challenge of
 * a passkey ceremony is not used up, nothing is audited or stored, and the
 * event loop stays free (a user handle of {"length": 2e7} once reached
 * Buffer.from and froze the process for seconds).
 */
import t, { type Test } from "tap";
import { Browser, authorizationUrl, csrfToken, isConsentPage, isSignInPage, last, makeClient, makeUser, strongPassword } from "../helpers/http-flow.ts";
import {
  authenticationOptions,
  openAccount,
  openPasskeySignIn,
  postJson,
  registerPasskey,
  registrationOptions,
  sendAssertion,
  startPasskeyApp,
  type JsonResponse,
} from "../helpers/passkey-app.ts";
import { SoftAuthenticator } from "../helpers/soft-authenticator.ts";

const running = await startPasskeyApp(t, { SIGNIN_MAX_FAILURES: "1000", SIGNIN_MAX_FAILURES_PER_IP: "100000" });
const client = await makeClient(running, { name: "Body limit tests" });
const { prisma } = running.db;

/** What a refused request must leave unchanged. */
async function snapshot() {
  return {
    audit: await prisma.auditEvent.count(),
    passkeys: (await prisma.passkey.findMany({ orderBy: { id: "asc" }, select: { id: true, counter: true } })).map((p) => `${p.id}:${p.counter}`),
    sessions: await prisma.oidcRecord.count({ where: { model: "Session", accountId: { not: null } } }),
  };
}

/** A 400 JSON invalid_request, answered at once, with nothing written and the challenge (if any) still unused. */
async function expectRefused(t: Test, label: string, send: () => Promise<JsonResponse>, challengeId?: string) {
  const before = await snapshot();
  const res = await send();
  t.equal(res.status, 400, `${label}: 400 (got ${res.status} ${JSON.stringify(res.json).slice(0, 200)})`);
  t.equal(res.json.error, "invalid_request", `${label}: a JSON invalid_request error`);
  t.ok(res.ms < 1000, `${label}: answered at once (${Math.round(res.ms)} ms)`);
  t.same(await snapshot(), before, `${label}: nothing audited or stored`);
  if (challengeId) t.equal(await prisma.webAuthnChallenge.count({ where: { id: challengeId } }), 1, `${label}: the challenge was not used up`);
}

type Json = Record<string, unknown>;
const long = (n: number) => "A".repeat(n);

t.test("passkey sign-in: non-string and oversized fields of the assertion are refused with 400 at once", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const cases: [string, (body: { challengeId: string; response: Json & { response: Json } }) => unknown][] = [
    ['userHandle {"length": 2e7}', (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, userHandle: { length: 2e7 } } } })],
    ["userHandle a number", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, userHandle: 12345 } } })],
    ["userHandle of 129 characters", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, userHandle: long(129) } } })],
    ["userHandle not base64url", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, userHandle: "not base64url!" } } })],
    ["clientDataJSON of 5000 characters", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, clientDataJSON: long(5000) } } })],
    ["authenticatorData an array", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, authenticatorData: ["x"] } } })],
    ["signature of 2000 characters", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, signature: long(2000) } } })],
    ["signature missing", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, signature: undefined } } })],
    ["an unknown field in the response", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, extra: "x" } } })],
    ["id of 2000 characters", (b) => ({ ...b, response: { ...b.response, id: long(2000) } })],
    ["rawId a number", (b) => ({ ...b, response: { ...b.response, rawId: 42 } })],
    ["type other than public-key", (b) => ({ ...b, response: { ...b.response, type: "password" } })],
    ["clientExtensionResults a string", (b) => ({ ...b, response: { ...b.response, clientExtensionResults: "x" } })],
    ["authenticatorAttachment outside its enum", (b) => ({ ...b, response: { ...b.response, authenticatorAttachment: "bogus" } })],
    ["an unknown field in the credential", (b) => ({ ...b, response: { ...b.response, extra: { length: 2e7 } } })],
    ["challengeId of 65 characters", (b) => ({ ...b, challengeId: long(65) })],
    ["an unknown field in the body", (b) => ({ ...b, more: 1 })],
  ];
  for (const [label, tamper] of cases) {
    const signIn = await openPasskeySignIn(running, client);
    const { challengeId, options } = await authenticationOptions(signIn);
    const body = tamper({ challengeId, response: authenticator.assert(options) as unknown as Json & { response: Json } });
    await expectRefused(t, label, () => sendAssertion(signIn, body), challengeId);
  }
  const signIn = await openPasskeySignIn(running, client);
  for (const [label, raw] of [["an array body", "[]"], ["a string body", JSON.stringify(long(1000))], ["a null response", '{"challengeId":"x","response":null}']] as const) {
    await expectRefused(t, label, () => postJson(signIn.browser, `/interaction/${signIn.uid}/passkey`, raw, { "x-csrf-token": signIn.csrf }));
  }
  const { challengeId, options } = await authenticationOptions(signIn);
  t.equal((await sendAssertion(signIn, { challengeId, response: authenticator.assert(options) })).status, 200, "the untampered assertion still signs in");
});

t.test("passkey options: the body must be an empty object", async (t) => {
  const user = await makeUser(running);
  const signIn = await openPasskeySignIn(running, client);
  const account = await openAccount(running, user);
  for (const [path, browser, csrf] of [
    [`/interaction/${signIn.uid}/passkey/options`, signIn.browser, signIn.csrf],
    ["/account/passkeys/options", account.browser, account.csrf],
  ] as const) {
    const challenges = await prisma.webAuthnChallenge.count();
    for (const [label, body] of [["an unknown field", { junk: long(1000) }], ["an array", "[1,2,3]"], ["a number", "5"]] as const) {
      await expectRefused(t, `${path} with ${label}`, () => postJson(browser, path, body, { "x-csrf-token": csrf }));
    }
    t.equal(await prisma.webAuthnChallenge.count(), challenges, `${path}: no challenge was stored`);
    t.equal((await postJson(browser, path, {}, { "x-csrf-token": csrf })).status, 200, `${path}: {} still gets options`);
  }
});

t.test("passkey registration: non-string and oversized fields of the attestation are refused with 400 at once", async (t) => {
  const user = await makeUser(running);
  const account = await openAccount(running, user);
  const cases: [string, (body: { challengeId: string; response: Json & { response: Json } }) => unknown][] = [
    ['clientDataJSON {"length": 2e7}', (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, clientDataJSON: { length: 2e7 } } } })],
    ["attestationObject of 20000 characters", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, attestationObject: long(20000) } } })],
    ["100 transports", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, transports: Array(100).fill("usb") } } })],
    ["a transport that is not a string", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, transports: [1] } } })],
    ["a transport of 100 characters", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, transports: ["x".repeat(100)] } } })],
    ["publicKeyAlgorithm a string", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, publicKeyAlgorithm: "-7" } } })],
    ["publicKey of 5000 characters", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, publicKey: long(5000) } } })],
    ["an unknown field in the response", (b) => ({ ...b, response: { ...b.response, response: { ...b.response.response, extra: "x" } } })],
    ["clientExtensionResults an array", (b) => ({ ...b, response: { ...b.response, clientExtensionResults: [] } })],
    ["credProps.rk a string", (b) => ({ ...b, response: { ...b.response, clientExtensionResults: { credProps: { rk: "yes" } } } })],
    ["authenticatorAttachment a number", (b) => ({ ...b, response: { ...b.response, authenticatorAttachment: 1 } })],
    ["a name of 101 characters", (b) => ({ ...b, name: "n".repeat(101) })],
    ["a name that is a number", (b) => ({ ...b, name: 5 })],
    ["an unknown field in the body", (b) => ({ ...b, more: "x" })],
  ];
  for (const [label, tamper] of cases) {
    const { challengeId, options } = await registrationOptions(account);
    const body = tamper({ challengeId, response: new SoftAuthenticator(running.url).register(options) as unknown as Json & { response: Json } });
    await expectRefused(t, label, () => postJson(account.browser, "/account/passkeys", body, { "x-csrf-token": account.csrf }), challengeId);
  }
  const { challengeId, options } = await registrationOptions(account);
  const response = new SoftAuthenticator(running.url).register(options);
  const ok = await postJson(account.browser, "/account/passkeys", { challengeId, response: { ...response, clientExtensionResults: { credProps: { rk: true } } }, name: "Laptop" }, { "x-csrf-token": account.csrf });
  t.equal(ok.status, 201, "an untampered registration (with credProps, as browsers send it) is stored");
});

t.test("/healthz answers fast while oversized user handles are sent", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  const prepared = [];
  for (let i = 0; i < 8; i++) {
    const signIn = await openPasskeySignIn(running, client);
    const { challengeId, options } = await authenticationOptions(signIn);
    const response = authenticator.assert(options) as unknown as Json & { response: Json };
    prepared.push({ signIn, body: { challengeId, response: { ...response, response: { ...response.response, userHandle: { length: 2e7 } } } } });
  }
  let done = false;
  const latencies: number[] = [];
  const probe = (async () => {
    while (!done) {
      const started = performance.now();
      const res = await fetch(`${running.url}/healthz`);
      await res.text();
      latencies.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  const answers = await Promise.all(prepared.map(({ signIn, body }) => sendAssertion(signIn, body)));
  await new Promise((resolve) => setTimeout(resolve, 50));
  done = true;
  await probe;
  t.same(answers.map((a) => a.status), Array(prepared.length).fill(400), "every attack is refused with 400");
  const worst = Math.max(...latencies);
  // The attack, unchecked, holds the event loop for seconds; one GC pause or
  // a busy shared core must not fail the test, hence a bound of 1 s.
  t.ok(worst < 1000, `/healthz answered every probe in under 1 s (${latencies.length} probes, worst ${Math.round(worst)} ms)`);
});

t.test("form bodies: oversized, repeated and unknown fields are refused with 400", async (t) => {
  const user = await makeUser(running);
  const browser = new Browser(running.url);
  const page = last(await browser.follow((await authorizationUrl(client)).url));
  t.ok(isSignInPage(page.body));
  const csrf = csrfToken(page.body);
  const login = `${page.url.pathname}/login`;
  const form = (fields: [string, string][]) => new URLSearchParams(fields).toString();
  const loginCases: [string, string][] = [
    ["an email of 321 characters", form([["csrf", csrf], ["email", `${"a".repeat(309)}@example.test`], ["password", "x"]])],
    ["a password of 1025 characters", form([["csrf", csrf], ["email", user.email], ["password", "p".repeat(1025)]])],
    ["an email given twice", form([["csrf", csrf], ["email", user.email], ["email", user.email], ["password", user.password]])],
    ["a csrf token of 201 characters", form([["csrf", "c".repeat(201)], ["email", user.email], ["password", user.password]])],
    ["an unknown field", form([["csrf", csrf], ["email", user.email], ["password", user.password], ["admin", "1"]])],
  ];
  for (const [label, body] of loginCases) {
    const { res, ms, before } = await postForm(browser, login, body);
    t.equal(res.status, 400, `sign-in with ${label}: 400 (got ${res.status})`);
    t.ok(ms < 1000, `answered at once (${Math.round(ms)} ms)`);
    t.same(await snapshot(), before, "nothing audited, no session");
  }

  // The consent form: a real consent page, then a decision that is neither allow nor deny.
  const consent = last(await browser.submit(page, { email: user.email, password: user.password }));
  t.ok(isConsentPage(consent.body), "signed in, the consent page");
  const consentCsrf = csrfToken(consent.body);
  for (const [label, body] of [
    ["a decision outside allow/deny", form([["csrf", consentCsrf], ["decision", "maybe"]])],
    ["a decision given twice", form([["csrf", consentCsrf], ["decision", "allow"], ["decision", "deny"]])],
  ] as const) {
    const { res } = await postForm(browser, `${consent.url.pathname}/consent`, body);
    t.equal(res.status, 400, `consent with ${label}: 400 (got ${res.status} ${res.location?.href ?? ""})`);
  }
  t.ok(isConsentPage((await browser.request(consent.url)).body), "the consent page still shows: nothing was decided");

  // The account forms.
  const account = await openAccount(running, user);
  const accountCases: [string, string, string][] = [
    ["/account/password", "a new password of 1025 characters", form([["csrf", account.csrf], ["current_password", user.password], ["new_password", "p".repeat(1025)]])],
    ["/account/password", "a current password given twice", form([["csrf", account.csrf], ["current_password", user.password], ["current_password", "x"], ["new_password", strongPassword()]])],
    ["/account/sessions/sign-out-others", "a csrf token of 201 characters", form([["csrf", "c".repeat(201)]])],
    ["/account/sessions/sign-out-others", "an unknown field", form([["csrf", account.csrf], ["all", "1"]])],
    ["/account/passkeys/no-such-passkey/remove", "a csrf token given twice", form([["csrf", account.csrf], ["csrf", account.csrf]])],
  ];
  for (const [path, label, body] of accountCases) {
    const { res, before } = await postForm(account.browser, path, body);
    t.equal(res.status, 400, `${path} with ${label}: 400 (got ${res.status} ${res.location?.href ?? ""})`);
    t.same(await snapshot(), before, "nothing audited or changed");
  }
});

/** A raw form POST (the body as given, so that fields can repeat). */
async function postForm(browser: Browser, path: string, body: string) {
  const before = await snapshot();
  const url = new URL(path, browser.origin);
  const started = performance.now();
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "user-agent": "gatehouse-tests", cookie: browser.jar.header(url) },
    body,
    redirect: "manual",
  });
  browser.jar.store(url, res.headers.getSetCookie());
  await res.text();
  const location = res.headers.get("location");
  return { res: { status: res.status, location: location ? new URL(location, url) : undefined }, ms: performance.now() - started, before };
}
