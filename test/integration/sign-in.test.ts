/**
 * Sign-in and authorization: the negative and security cases (README;
 * docs/SECURITY.md), against the app built in-process and listening on 127.0.0.1
 * with a SQLite database. HTTP is driven with fetch and a cookie jar
 * (helpers/http-flow.ts); openid-client builds the authorization requests
 * (PKCE S256, state, nonce) and redeems codes; raw requests send what
 * openid-client would refuse to.
 */
import { loadConfig } from "../../src/config.ts";
import t, { type Test } from "tap";
import * as oidc from "openid-client";
import { dictionary } from "@zxcvbn-ts/language-common";
import { createClient } from "../../src/services/clients.ts";
import { createUser } from "../../src/services/users.ts";
import { AppError } from "../../src/errors.ts";
import { hashAuditEmail } from "../../src/services/sign-in.ts";
import {
  Browser,
  authorizationUrl,
  buildTestApp,
  injectBehindTls,
  csrfToken,
  errorParagraph,
  isConsentPage,
  isSignInPage,
  last,
  makeClient,
  makeUser,
  redeem,
  redirectUri,
  signInAndConsent,
  startApp,
  strongPassword,
  tokenRequest,
  uniqueEmail,
  type Response,
} from "../helpers/http-flow.ts";

const invalidCredentials = "Invalid email or password.";

// The per-IP failure limit (50 by default) is raised so that the failures of
// one test do not lock out the next; the per-account limit keeps its default (5).
const running = await startApp(t, { env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
const { prisma } = running.db;

/** Rows of one oidc-provider model, optionally only those of a grant or an account. */
const countRecords = (model: string, where: { grantId?: string; accountId?: string } = {}) => prisma.oidcRecord.count({ where: { model, ...where } });

/** Audit events about a user (or with no user, for unknown emails), oldest first, data parsed. */
async function auditEvents(where: { userId?: string | null; type?: string }) {
  const rows = await prisma.auditEvent.findMany({ where, orderBy: { seq: "asc" } });
  return rows.map((row) => ({ ...row, data: JSON.parse(row.data) as Record<string, unknown> }));
}

/** Opens the sign-in page of a new authorization request in `browser`. */
async function openSignIn(t: Test, browser: Browser, client: Awaited<ReturnType<typeof makeClient>>, params: Record<string, string> = {}) {
  const pending = await authorizationUrl(client, params);
  const chain = await browser.follow(pending.url);
  t.equal(chain[0]!.status, 303, "the authorization endpoint redirects to the interaction");
  const page = last(chain);
  t.equal(page.status, 200, "the sign-in page answers 200");
  t.ok(isSignInPage(page.body), "and shows the sign-in form");
  return { pending, page };
}

/** Posts the sign-in form of `page` (one attempt, no redirects followed). */
function postSignIn(browser: Browser, page: Response, email: string, password: string, csrf: string | null = csrfToken(page.body)) {
  return browser.request(`${page.url.pathname}/login`, { form: { ...(csrf === null ? {} : { csrf }), email, password } });
}

const stackFrame = /^\s*at .+(:\d+:\d+|\(native\))\)?$/m;
const filePath = /\/work\/|node_modules|\/src\/|\.ts:\d+|\.js:\d+|file:\/\//;

t.test("authorization requests that must be refused", async (t) => {
  const client = await makeClient(running, { name: "Refusal Checker" });

  t.test("an unregistered redirect_uri gets an HTML error page and no redirect", async (t) => {
    for (const uri of ["http://127.0.0.1:9/evil", "https://attacker.example/cb", `${redirectUri}/extra`]) {
      const interactionsBefore = await countRecords("Interaction");
      const { url } = await authorizationUrl(client, { redirect_uri: uri });
      const res = await new Browser(running.url).request(url);
      t.equal(res.status, 400, `${uri}: 400`);
      t.equal(res.headers.get("location"), null, `${uri}: no Location header, nothing sent to the unregistered URI`);
      t.match(res.headers.get("content-type"), /^text\/html/, "an HTML page");
      t.match(res.body, "redirect_uri did not match any of the client&#39;s registered redirect_uris", "which says why");
      t.notMatch(res.body, uri, "and does not link to the unregistered URI");
      t.match(res.body, `Request id: <code>${res.headers.get("x-request-id")}</code>`, "with the request id");
      t.equal(await countRecords("Interaction"), interactionsBefore, "no interaction was started");
    }
  });

  /** Sends a tampered request; expects the error at the registered redirect_uri and no code. */
  const expectRedirectedError = async (t: Test, url: URL, state: string, description: RegExp) => {
    const interactionsBefore = await countRecords("Interaction");
    const res = await new Browser(running.url).request(url);
    t.equal(res.status, 303, "redirected back to the client");
    const to = res.location!;
    t.equal(`${to.origin}${to.pathname}`, redirectUri, "to the registered redirect_uri");
    t.equal(to.searchParams.get("error"), "invalid_request");
    t.match(to.searchParams.get("error_description"), description);
    t.equal(to.searchParams.get("state"), state, "with the state");
    t.equal(to.searchParams.get("iss"), running.url, "and the issuer (RFC 9207)");
    t.equal(to.searchParams.get("code"), null, "no code is issued");
    t.equal(await countRecords("Interaction"), interactionsBefore, "no sign-in is started");
  };

  t.test("a request without code_challenge is refused with invalid_request", async (t) => {
    const { url, state } = await authorizationUrl(client);
    url.searchParams.delete("code_challenge");
    url.searchParams.delete("code_challenge_method");
    await expectRedirectedError(t, url, state, /requires PKCE/);
  });

  t.test("code_challenge_method=plain is refused with invalid_request", async (t) => {
    const { url, state } = await authorizationUrl(client);
    // A plain challenge is the verifier itself: 43 characters of the PKCE alphabet.
    url.searchParams.set("code_challenge", oidc.randomPKCECodeVerifier());
    url.searchParams.set("code_challenge_method", "plain");
    await expectRedirectedError(t, url, state, /code_challenge_method/);
  });

  t.test("a code_challenge without code_challenge_method (plain by RFC 7636) is refused too", async (t) => {
    const { url, state } = await authorizationUrl(client);
    url.searchParams.delete("code_challenge_method");
    const res = await new Browser(running.url).request(url);
    t.equal(res.status, 303);
    t.equal(res.location?.searchParams.get("error"), "invalid_request", `refused: ${res.location?.searchParams.get("error_description")}`);
    t.equal(res.location?.searchParams.get("state"), state);
    t.equal(res.location?.searchParams.get("code"), null, "no code");
  });

  t.test("an unknown client_id gets an HTML error page, not a redirect", async (t) => {
    const { url } = await authorizationUrl(client);
    url.searchParams.set("client_id", "no-such-client");
    const res = await new Browser(running.url).request(url);
    t.equal(res.status, 400);
    t.equal(res.headers.get("location"), null);
    t.match(res.body, "Request id:");
  });
});

t.test("authorization codes", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { name: "Code Owner" });
  const other = await makeClient(running, { name: "Code Thief" });

  t.test("a reused code fails with invalid_grant and revokes what the first exchange issued", async (t) => {
    const browser = new Browser(running.url);
    const pending = await authorizationUrl(client, { scope: "openid email offline_access", prompt: "consent" });
    const callback = await signInAndConsent(browser, pending, user);
    const tokens = await redeem(client, callback, pending);
    t.type(tokens.refresh_token, "string", "the first exchange gives a refresh token (offline_access)");
    t.equal((await oidc.tokenIntrospection(client.config, tokens.access_token)).active, true, "its access token is active");
    const grantId = (await prisma.oidcRecord.findFirstOrThrow({ where: { model: "AccessToken", accountId: user.id, clientId: client.clientId } })).grantId!;
    t.equal(await prisma.oidcRecord.count({ where: { model: "Grant", id: grantId } }), 1, "the grant row exists");

    const again = await tokenRequest(running, client, {
      grant_type: "authorization_code",
      code: callback.searchParams.get("code")!,
      redirect_uri: redirectUri,
      code_verifier: pending.codeVerifier,
    });
    t.equal(again.status, 400, "the second exchange is refused");
    t.equal(again.json.error, "invalid_grant");
    t.equal(again.json.access_token, undefined, "and issues nothing");

    t.equal((await oidc.tokenIntrospection(client.config, tokens.access_token)).active, false, "the first exchange's access token is revoked");
    t.equal((await oidc.tokenIntrospection(client.config, tokens.refresh_token!)).active, false, "and its refresh token");
    await t.rejects(oidc.refreshTokenGrant(client.config, tokens.refresh_token!), { error: "invalid_grant" } as object as Error, "which no longer refreshes");
    await t.rejects(oidc.fetchUserInfo(client.config, tokens.access_token, user.id), "userinfo refuses the access token");
    for (const model of ["AccessToken", "RefreshToken", "AuthorizationCode"]) {
      t.equal(await countRecords(model, { grantId }), 0, `no ${model} row of the grant is left`);
    }
    t.equal(await prisma.oidcRecord.count({ where: { model: "Grant", id: grantId } }), 0, "the grant row itself is deleted");
  });

  t.test("a code redeemed by another client (with its valid credentials) fails with invalid_grant", async (t) => {
    const browser = new Browser(running.url);
    const pending = await authorizationUrl(client, { scope: "openid email" });
    const callback = await signInAndConsent(browser, pending, user);
    const stolen = await tokenRequest(running, other, {
      grant_type: "authorization_code",
      code: callback.searchParams.get("code")!,
      redirect_uri: redirectUri,
      code_verifier: pending.codeVerifier,
    });
    t.equal(stolen.status, 400);
    t.equal(stolen.json.error, "invalid_grant");
    t.equal(stolen.json.access_token, undefined, "no token for the other client");
    t.equal(await prisma.oidcRecord.count({ where: { model: "AccessToken", clientId: other.clientId } }), 0, "no access token row for the other client");
    // oidc-provider checks the client before consuming: the attempt neither burns nor revokes the code.
    const tokens = await redeem(client, callback, pending);
    t.equal(tokens.claims()?.sub, user.id, "the client the code was issued to can still redeem it");
  });
});

t.test("CSRF: a form posted without its token, or with a wrong one, is refused with 403 and signs nobody in", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { name: "CSRF Target" });
  const browser = new Browser(running.url);
  const { page } = await openSignIn(t, browser, client);
  const { page: otherPage } = await openSignIn(t, new Browser(running.url), client);
  const otherToken = csrfToken(otherPage.body);
  t.not(otherToken, csrfToken(page.body), "each interaction has its own token");

  const attempts: [string, string | null][] = [
    ["no token", null],
    ["an empty token", ""],
    ["a made-up token", "A".repeat(43)],
    ["the token of another interaction", otherToken],
  ];
  for (const [label, csrf] of attempts) {
    // The right password, so that only the token can be why it is refused.
    const res = await postSignIn(browser, page, user.email, user.password, csrf);
    t.equal(res.status, 403, `${label}: 403`);
    t.equal(res.location, undefined, `${label}: no redirect`);
    t.match(res.headers.get("content-type"), /^text\/html/);
    t.match(res.body, "The form has expired or did not come from this site.", `${label}: an error page says why`);
  }
  t.equal(await countRecords("Session", { accountId: user.id }), 0, "no session was signed in");
  const signInEvents = (await auditEvents({ userId: user.id })).filter((e) => e.type.startsWith("sign_in."));
  t.same(signInEvents, [], "and no sign-in was even attempted (no sign_in.* event)");
  t.notOk(browser.jar.names().includes("_session"), "no session cookie was set");

  const again = await browser.request(page.url);
  t.equal(again.status, 200, "the interaction still shows");
  t.ok(isSignInPage(again.body), "the sign-in page");

  const ok = await postSignIn(browser, again, user.email, user.password);
  t.equal(ok.status, 303, "with the page's own token the same form signs in");

  t.test("the consent form too", async (t) => {
    const consent = last(await browser.follow(ok.location!));
    t.ok(isConsentPage(consent.body), "the consent page is shown");
    const action = `${consent.url.pathname}/consent`;
    for (const [label, csrf] of [["no token", null], ["a wrong token", otherToken]] as const) {
      const res = await browser.request(action, { form: { ...(csrf === null ? {} : { csrf }), decision: "allow" } });
      t.equal(res.status, 403, `${label}: 403`);
      t.equal(res.location, undefined, "no redirect to the client");
    }
    t.equal(await countRecords("Grant", { accountId: user.id }), 0, "nothing was granted");
    const still = await browser.request(consent.url);
    t.ok(isConsentPage(still.body), "the consent page still shows");
  });
});

t.test("the sixth failed attempt gets 429 with Retry-After, and then even the right password is refused", async (t) => {
  t.equal(running.config.signInMaxFailures, 5, "the default limit of 5 failures per account");
  const user = await makeUser(running);
  const client = await makeClient(running, { name: "Lockout Target" });
  const browser = new Browser(running.url);
  const { page } = await openSignIn(t, browser, client);

  const elapsed: number[] = [];
  for (let attempt = 1; attempt <= 5; attempt++) {
    const started = performance.now();
    const res = await postSignIn(browser, page, user.email, `wrong-${attempt}-${strongPassword()}`);
    elapsed.push(performance.now() - started);
    t.equal(res.status, 401, `failure ${attempt}: 401`);
    t.equal(errorParagraph(res.body), invalidCredentials, `failure ${attempt}: "${invalidCredentials}"`);
  }
  // 250 ms before the second answer, doubling: the fifth waits at least 2 s.
  // Only lower bounds are asserted: a loaded machine makes answers slower, never faster.
  t.ok(elapsed[1]! >= 250 && elapsed[4]! >= 2000, `later failures are answered more slowly (${elapsed.map((ms) => Math.round(ms)).join(", ")} ms)`);

  const sixth = await postSignIn(browser, page, user.email, "still-the-wrong-password");
  t.equal(sixth.status, 429, "the sixth attempt: 429");
  const retryAfter = sixth.headers.get("retry-after");
  t.match(retryAfter, /^\d+$/, "Retry-After is a number of seconds");
  t.ok(Number(retryAfter) > 0 && Number(retryAfter) <= running.config.signInWindow, `within the window (${retryAfter} s)`);
  t.match(errorParagraph(sixth.body), /^Too many failed attempts\. Try again in 15 minutes\.$/, "the page says so");
  t.equal(sixth.headers.get("cache-control"), "no-store");

  const right = await postSignIn(browser, page, user.email, user.password);
  t.equal(right.status, 429, "the right password is refused while the window lasts");
  t.ok(Number(right.headers.get("retry-after")) > 0, "with Retry-After");
  t.equal(right.location, undefined, "and no redirect");
  t.equal(await countRecords("Session", { accountId: user.id }), 0, "nobody is signed in");

  const failed = await auditEvents({ userId: user.id, type: "sign_in.failed" });
  t.equal(failed.length, 5, "five sign_in.failed events (blocked attempts are not verified)");
  for (const event of failed) {
    t.equal(event.data.reason, "wrong_password");
    t.equal(event.data.method, "password");
    t.equal(event.ip, "127.0.0.1", "with the client's IP");
    t.equal(event.clientId, client.clientId, "and the client");
    t.equal(event.userAgent, "gatehouse-tests");
  }
  const locked = await auditEvents({ userId: user.id, type: "sign_in.locked" });
  t.equal(locked.length, 1, "one sign_in.locked event");
  t.equal(locked[0]?.data.failures, 5);
  t.same(locked[0]?.data, { failures: 5 }, "about the user by id: no email in the event");
  t.equal(locked[0]?.ip, "127.0.0.1");
  t.same(await auditEvents({ userId: user.id, type: "sign_in.succeeded" }), [], "no sign_in.succeeded");
});

t.test("an unknown email and a wrong password get the same answer; the audit log tells them apart", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { name: "Enumeration Target" });
  const browser = new Browser(running.url);
  const { page } = await openSignIn(t, browser, client);
  const unknownEmail = uniqueEmail("nobody");

  const unknown = await postSignIn(browser, page, unknownEmail, user.password);
  const wrong = await postSignIn(browser, page, user.email, "not-the-password-at-all");
  t.equal(unknown.status, 401, "unknown email: 401");
  t.equal(wrong.status, unknown.status, "wrong password: the same status");
  t.equal(errorParagraph(unknown.body), invalidCredentials);
  t.equal(errorParagraph(wrong.body), errorParagraph(unknown.body), "the same error paragraph");
  // The pages differ only by the email echoed back into the form and the CSP nonces.
  const normalise = (html: string, email: string) => html.replace(email, "EMAIL").replace(/nonce="[^"]+"/g, 'nonce="N"');
  t.equal(normalise(wrong.body, user.email), normalise(unknown.body, unknownEmail), "the same page");
  for (const name of ["cache-control", "content-type", "retry-after"]) t.equal(wrong.headers.get(name), unknown.headers.get(name), `the same ${name}`);

  const byUser = await auditEvents({ userId: user.id, type: "sign_in.failed" });
  t.equal(byUser.length, 1);
  t.equal(byUser[0]?.data.reason, "wrong_password", "the wrong password is audited as wrong_password");
  const emailHash = hashAuditEmail(running.ring.derive("audit-email"), unknownEmail.toLowerCase());
  const anonymous = (await auditEvents({ userId: null, type: "sign_in.failed" })).filter((e) => e.data.email_hash === emailHash);
  t.equal(anonymous.length, 1);
  t.equal(anonymous[0]?.data.reason, "unknown_email", "the unknown email as unknown_email, with a keyed hash of the email tried");
  t.same(Object.keys(anonymous[0]?.data ?? {}).sort(), ["email_hash", "method", "reason"], "and not the email itself (it may be a password)");
  t.notMatch(JSON.stringify(anonymous[0]), unknownEmail.toLowerCase(), "the email appears nowhere in the event");
  t.equal(anonymous[0]?.ip, "127.0.0.1");
});

t.test("a disabled user cannot sign in, and their live session and tokens stop working", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { name: "Disabled Check" });
  const browser = new Browser(running.url);
  const pending = await authorizationUrl(client, { scope: "openid email offline_access", prompt: "consent" });
  const tokens = await redeem(client, await signInAndConsent(browser, pending, user), pending);
  t.equal((await oidc.fetchUserInfo(client.config, tokens.access_token, user.id)).sub, user.id, "userinfo answers before");

  await prisma.user.update({ where: { id: user.id }, data: { disabled: true } });

  const userinfo = await fetch(`${running.url}/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  t.equal(userinfo.status, 401, "userinfo with the existing access token: 401");
  t.match(userinfo.headers.get("www-authenticate"), /error="invalid_token"/);
  await t.rejects(oidc.refreshTokenGrant(client.config, tokens.refresh_token!), { error: "invalid_grant" } as object as Error, "the refresh token is refused");
  t.equal(
    (await oidc.tokenIntrospection(client.config, tokens.access_token)).active,
    false,
    "introspection says the disabled user's access token is inactive",
  );

  const again = await authorizationUrl(client, { scope: "openid email" });
  const chain = await browser.follow(again.url);
  const end = last(chain);
  t.notOk(
    chain.some((r) => r.location?.searchParams.has("code")),
    `a new authorization request in the same browser does not silently succeed (${chain.map((r) => `${r.status} ${r.url.pathname}`).join(" -> ")})`,
  );
  t.ok(end.status < 500, "it is not a server error");
  t.ok(isSignInPage(end.body), "it asks to sign in again");
  t.notMatch(end.body, stackFrame, "whatever the status, the page shows no stack trace");

  const fresh = new Browser(running.url);
  const { page } = await openSignIn(t, fresh, client);
  const res = await postSignIn(fresh, page, user.email, user.password);
  t.equal(res.status, 401, "signing in with the right password: 401");
  t.equal(errorParagraph(res.body), invalidCredentials, `the same "${invalidCredentials}"`);
  const failed = await auditEvents({ userId: user.id, type: "sign_in.failed" });
  t.equal(failed.at(-1)?.data.reason, "disabled", "audited with reason disabled");
});

t.test("names with HTML in them are escaped on the sign-in and consent pages", async (t) => {
  const userName = "<script>alert(1)</script>";
  const clientName = "<script>alert(2)</script>";
  const user = await makeUser(running, { name: userName });
  const client = await makeClient(running, { name: clientName });
  const browser = new Browser(running.url);
  const { page } = await openSignIn(t, browser, client, { scope: "openid profile email" });
  t.match(page.body, "&lt;script&gt;alert(2)&lt;/script&gt;", "the sign-in page shows the client name escaped");
  t.notMatch(page.body, "<script>alert(", "and never the raw tag");

  const echoed = '"><script>alert(3)</script>';
  const failed = await postSignIn(browser, page, echoed, "whatever-password");
  t.match(failed.body, 'value="&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;"', "a typed email echoed into the form is escaped");
  t.notMatch(failed.body, "<script>alert(", "no raw tag");

  const consent = last(await browser.submit(failed, { email: user.email, password: user.password }));
  t.ok(isConsentPage(consent.body), "the consent page");
  t.match(consent.body, "<strong>&lt;script&gt;alert(2)&lt;/script&gt;</strong> asks to:", "names the client, escaped");
  t.notMatch(consent.body, "<script>alert(", "and no raw tag: neither the client's nor the user's name");
  // The consent page identifies the user by email (which cannot hold < or >), not by name.
  t.notMatch(consent.body, "alert(1)", "the user's name is not shown on the consent page at all");
  t.match(consent.body, `Signed in as ${user.email}.`);
});

t.test("headers of the sign-in and consent pages, and the cookies of the flow", async (t) => {
  const user = await makeUser(running);
  const client = await makeClient(running, { name: "Header Check" });
  const browser = new Browser(running.url);
  const { page } = await openSignIn(t, browser, client);
  const { page: second } = await openSignIn(t, new Browser(running.url), client);

  const checkPageHeaders = (t: Test, res: Response, label: string) => {
    const csp = res.headers.get("content-security-policy") ?? "";
    t.match(csp, /script-src [^;]*'nonce-[A-Za-z0-9+/=_-]{16,}'/, `${label}: the CSP allows scripts by nonce`);
    t.notMatch(csp, /'unsafe-inline'|'unsafe-eval'/, `${label}: and nothing unsafe`);
    t.match(csp, /default-src 'none'/, `${label}: default-src 'none'`);
    t.match(csp, /frame-ancestors 'none'/, `${label}: frame-ancestors 'none'`);
    t.equal(res.headers.get("referrer-policy"), "no-referrer", `${label}: Referrer-Policy no-referrer`);
    t.equal(res.headers.get("cache-control"), "no-store", `${label}: Cache-Control no-store`);
    t.equal(res.headers.get("x-frame-options"), "DENY");
    t.equal(res.headers.get("x-content-type-options"), "nosniff");
    t.equal(res.headers.get("strict-transport-security"), null, `${label}: no HSTS on an http issuer`);
  };
  checkPageHeaders(t, page, "sign-in page");
  const nonce = (res: Response) => /'nonce-([^']+)'/.exec(res.headers.get("content-security-policy") ?? "")?.[1];
  t.not(nonce(page), nonce(second), "each response has its own nonce");

  const failed = await postSignIn(browser, page, user.email, "a-wrong-password-here");
  checkPageHeaders(t, failed, "sign-in page after a failure");
  const chain = await browser.submit(failed, { email: user.email, password: user.password });
  const consent = last(chain);
  t.ok(isConsentPage(consent.body));
  checkPageHeaders(t, consent, "consent page");
  const callback = last(await browser.submit(consent, { decision: "allow" })).location!;
  t.ok(callback.searchParams.get("code"), "the flow completes");

  for (const name of ["_interaction", "_interaction.sig", "_interaction_resume", "_interaction_resume.sig", "_session", "_session.sig"]) {
    const lines = browser.jar.linesFor(name);
    t.ok(lines.length > 0, `${name} was set`);
    for (const line of lines) {
      const attributes = line.toLowerCase().split(";").map((a) => a.trim());
      t.ok(attributes.includes("httponly"), `${name} is HttpOnly`);
      t.ok(attributes.includes("samesite=lax"), `${name} is SameSite=Lax`);
      t.notOk(attributes.includes("secure"), `${name} is not Secure on an http issuer`);
    }
  }
});

t.test("with an https issuer behind a TLS proxy every cookie of the flow is Secure", async (t) => {
  // TRUST_PROXY as the README's production set-up has it: the proxy terminates
  // TLS and says so in X-Forwarded-Proto.
  const issuer = "https://id.example.test";
  const { app, db, config, ring } = await buildTestApp(t, { env: { ISSUER: issuer, TRUST_PROXY: "loopback" } });
  const callbackUri = "https://rp.example.test/cb";
  const created = await createClient(db, ring, { name: "TLS client", redirectUris: [callbackUri], scope: "openid email" });
  const password = strongPassword();
  const user = await createUser(db, config.argon2, { email: uniqueEmail("tls"), password });

  const { inject, setCookies } = injectBehindTls(app, issuer);

  const verifier = oidc.randomPKCECodeVerifier();
  const query = new URLSearchParams({
    client_id: created.client_id,
    redirect_uri: callbackUri,
    response_type: "code",
    scope: "openid email",
    state: oidc.randomState(),
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  });
  const auth = await inject("GET", `/auth?${query}`);
  t.equal(auth.statusCode, 303, "the authorization request starts an interaction");
  const interaction = String(auth.headers.location);
  t.equal(auth.headers["strict-transport-security"], "max-age=31536000; includeSubDomains", "HSTS on an https issuer");
  const signIn = await inject("GET", interaction);
  t.equal(signIn.statusCode, 200);
  t.match(signIn.headers["content-security-policy"], /upgrade-insecure-requests/);
  const login = await inject("POST", `${interaction}/login`, { csrf: csrfToken(signIn.body), email: user.email, password });
  t.equal(login.statusCode, 303, "signed in");
  const resumed = await inject("GET", new URL(String(login.headers.location), issuer).pathname);
  t.equal(resumed.statusCode, 303, "and resumed");

  // On https the session cookie has the __Host- prefix (test/security/session-cookie.test.ts).
  for (const name of ["_interaction", "_interaction.sig", "_interaction_resume", "_interaction_resume.sig", "__Host-session", "__Host-session.sig"]) {
    const lines = setCookies.filter((line) => line.startsWith(`${name}=`));
    t.ok(lines.length > 0, `${name} was set`);
    for (const line of lines) {
      const attributes = line.toLowerCase().split(";").map((a) => a.trim());
      t.ok(attributes.includes("secure"), `${name} is Secure`);
      t.ok(attributes.includes("httponly"), `${name} is HttpOnly`);
      t.ok(attributes.includes("samesite=lax"), `${name} is SameSite=Lax`);
    }
  }
});

t.test("an https issuer without TRUST_PROXY is refused at start-up rather than failing every request", async (t) => {
  t.throws(() => loadConfig({ ISSUER: "https://id.example.test" }), { name: "ConfigError", variable: "TRUST_PROXY" });
});

t.test("error pages show a request id and no stack trace", async (t) => {
  const cases: [string, () => Promise<Response>][] = [
    ["an unknown interaction without its cookie", () => new Browser(running.url).request("/interaction/no-such-interaction")],
    ["a sign-in post to an unknown interaction", () => new Browser(running.url).request("/interaction/no-such-interaction/login", { form: { csrf: "x", email: "a@b.example", password: "x" } })],
    ["an unknown client at the authorization endpoint", () => new Browser(running.url).request("/auth?client_id=nope&response_type=code&scope=openid&redirect_uri=https%3A%2F%2Fx.example%2Fcb")],
  ];
  for (const [label, send] of cases) {
    const res = await send();
    t.equal(res.status, 400, `${label}: 400`);
    t.match(res.headers.get("content-type"), /^text\/html/, `${label}: an HTML page`);
    const requestId = res.headers.get("x-request-id");
    t.match(requestId, /^[0-9a-f-]{36}$/, `${label}: a request id header`);
    t.match(res.body, `Request id: <code>${requestId}</code>`, `${label}: the page shows the same request id`);
    t.notMatch(res.body, stackFrame, `${label}: no stack frames`);
    t.notMatch(res.body, filePath, `${label}: no file paths`);
    t.equal(res.headers.get("cache-control"), "no-store", `${label}: no-store`);
  }
  const expired = await new Browser(running.url).request("/interaction/no-such-interaction");
  t.match(expired.body, "This sign-in page has expired or was opened in another browser.", "a message a person can act on");
});

t.test("a common password is refused when a user is created", async (t) => {
  const common = (dictionary["passwords-common"] as string[]).filter((p) => p.length >= 8);
  t.ok(common.includes("password1234"), "password1234 is on @zxcvbn-ts/language-common's list");
  for (const password of ["password1234", "PASSWORD1234", common[0]!, common[common.length - 1]!]) {
    const email = uniqueEmail("common");
    const error = await createUser(running.db, running.config.argon2, { email, password }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(error instanceof AppError, `${password}: refused with an AppError`);
    t.equal((error as AppError).code, "invalid_password", `${password}: code invalid_password`);
    t.equal((error as AppError).status, 400);
    t.match((error as AppError).message, /too common/);
    t.equal(await prisma.user.count({ where: { email } }), 0, `${password}: no user was created`);
  }
  const ok = await createUser(running.db, running.config.argon2, { email: uniqueEmail("uncommon"), password: strongPassword() });
  t.type(ok.id, "string", "an uncommon password is accepted");
});
