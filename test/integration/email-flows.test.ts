/**
 * The email flows over HTTP against a listening server (docs/account-lifecycle.md):
 * forgotten password and reset, email verification, registration and
 * invitations; every refusal of a link (used, expired, superseded, wrong
 * purpose, unknown); the enumeration-safe answers; the rate limits. Links are
 * read from the email outbox, as a person reads them from the message.
 */
import t from "tap";
import { Browser, csrfToken, isSignInPage, last, makeUser, startApp, strongPassword, uniqueEmail, type RunningApp, type TestUser } from "../helpers/http-flow.ts";
import { latestEmail, linkIn, queuedEmails, settle, waitForEmails } from "../helpers/outbox.ts";
import { makeAdminClient, AdminApi } from "../helpers/admin.ts";
import { providers } from "../helpers/databases.ts";
import { createFindAccount } from "../../src/oidc/account.ts";
import { findUserByEmail } from "../../src/db/users.ts";
import { forgotPasswordAnswer, registrationAnswer } from "../../src/account/lifecycle-routes.ts";

/** Signs `user` in to /account in a new browser; returns the browser and the account page. */
async function openAccount(running: RunningApp, user: Pick<TestUser, "email" | "password">) {
  const browser = new Browser(running.url);
  const page = last(await browser.follow("/account"));
  if (!isSignInPage(page.body)) throw new Error("expected the sign-in page");
  const account = last(await browser.submit(page, { email: user.email, password: user.password }));
  return { browser, account };
}

async function isSignedIn(browser: Browser): Promise<boolean> {
  const page = last(await browser.follow("/account"));
  return page.url.pathname === "/account" && page.status === 200 && page.body.includes("Signed in as");
}

async function auditOf(running: RunningApp, types: string[]) {
  const rows = await running.db.prisma.auditEvent.findMany({ where: { type: { in: types } }, orderBy: { seq: "asc" } });
  return rows.map((r) => ({ type: r.type, userId: r.userId, data: JSON.parse(r.data) as Record<string, unknown>, raw: r.data }));
}

/** A page without what differs per request: CSRF tokens and CSP nonces. */
function normalise(html: string): string {
  return html.replace(/name="csrf" value="[^"]*"/g, 'name="csrf" value=""').replace(/nonce="[^"]*"/g, 'nonce=""');
}

/** Asks for a reset link for `email` from `browser` (GET the form, POST it). */
async function forgot(browser: Browser, email: string) {
  const form = await browser.request("/password/forgot");
  return browser.request("/password/forgot", { form: { csrf: csrfToken(form.body), email } });
}

async function resetLink(running: RunningApp, email: string, count = 1): Promise<URL> {
  const emails = await waitForEmails(running.db, email, "password-reset", count);
  return linkIn(emails[count - 1]!.text, running.url);
}

async function submitNewPassword(browser: Browser, link: URL, password: string) {
  const page = await browser.request(link);
  if (page.status !== 200) return page;
  return browser.request(link, { form: { csrf: csrfToken(page.body), new_password: password } });
}

// On both databases: the compare-and-set of a use, superseding, expiry.
for (const provider of providers(t)) t.test(`forgotten password on ${provider}`, async (t) => {
  const running = await startApp(t, { provider });

  t.test("the sign-in page links to it; there is no sign-up link unless REGISTRATION=open", async (t) => {
    const page = last(await new Browser(running.url).follow("/account"));
    t.match(page.body, /<a href="\/password\/forgot">Forgot password\?<\/a>/);
    t.notMatch(page.body, /Create an account/);
    const form = await new Browser(running.url).request("/password/forgot");
    t.equal(form.status, 200);
    t.match(form.body, /<label for="email">Email<\/label>/);
    t.match(form.body, /<button type="submit">Send reset link<\/button>/);
  });

  t.test("known and unknown emails get byte-identical answers; only the known one is emailed", async (t) => {
    const user = await makeUser(running);
    const unknown = uniqueEmail("nobody");
    const browser = new Browser(running.url);
    await browser.request("/password/forgot");
    const known = await forgot(browser, user.email);
    const other = await forgot(browser, unknown);
    t.equal(known.status, 200);
    t.equal(other.status, known.status);
    t.match(known.body, forgotPasswordAnswer);
    t.equal(normalise(other.body), normalise(known.body), "the same page, apart from per-request tokens");
    t.equal(other.headers.get("content-length"), known.headers.get("content-length"));
    t.equal(known.headers.get("cache-control"), "no-store");
    await waitForEmails(running.db, user.email, "password-reset");
    await settle();
    t.same(await queuedEmails(running.db, unknown), [], "nothing queued for an unknown address");
  });

  t.test("a reset sets the password, verifies the email, revokes every session and signs the user in", async (t) => {
    const user = await makeUser(running);
    const elsewhere = await openAccount(running, user);
    t.ok(await isSignedIn(elsewhere.browser), "signed in on another device");

    const browser = new Browser(running.url);
    await forgot(browser, user.email);
    const link = await resetLink(running, user.email);
    t.match(link.pathname, /^\/password\/reset\/[A-Za-z0-9_-]{43}$/, "a 256-bit token in the URL");
    const page = await browser.request(link);
    t.equal(page.status, 200);
    t.equal(page.headers.get("cache-control"), "no-store");
    t.equal(page.headers.get("referrer-policy"), "no-referrer");
    t.match(page.body, /<label for="new_password">New password<\/label>/);
    t.match(page.body, /<button type="submit">Set password<\/button>/);

    const common = await browser.request(link, { form: { csrf: csrfToken(page.body), new_password: "password123" } });
    t.equal(common.status, 400, "a common password is refused");
    t.match(common.body, /too common/);
    const noCsrf = await browser.request(link, { form: { new_password: strongPassword() } });
    t.equal(noCsrf.status, 403, "a form without its CSRF token is refused");

    const password = strongPassword();
    const chain = await browser.follow(link, { form: { csrf: csrfToken(page.body), new_password: password } });
    const end = last(chain);
    t.equal(end.url.pathname, "/account", "signed in and on /account");
    t.match(end.body, /Signed in as/);
    t.notMatch(end.body, /Resend verification email/, "the email is verified");
    t.notOk(await isSignedIn(elsewhere.browser), "the other device was signed out");

    const row = await findUserByEmail(running.db, user.email);
    t.equal(row?.emailVerified, true);
    await waitForEmails(running.db, user.email, "password-changed");
    const after = await openAccount(running, { email: user.email, password });
    t.ok(await isSignedIn(after.browser), "the new password signs in");
    const old = await openAccount(running, user);
    t.equal(old.account.status, 401, "the old one does not");

    const events = await auditOf(running, ["email_link.sent", "email_link.used"]);
    t.ok(events.some((e) => e.type === "email_link.sent" && e.userId === user.id && e.data.purpose === "password-reset"));
    t.ok(events.some((e) => e.type === "email_link.used" && e.userId === user.id && e.data.purpose === "password-reset"));
    const token = link.pathname.split("/").pop()!;
    const all = await running.db.prisma.auditEvent.findMany();
    t.notOk(all.some((e) => e.data.includes(token)), "no token in the audit log");
    t.equal(await running.db.prisma.emailLinkToken.count({ where: { tokenHash: token } }), 0, "the token is not stored in clear");
  });

  t.test("a passkey-only user sets a first password with a reset link", async (t) => {
    const email = uniqueEmail("passkey-only");
    const { createUser } = await import("../../src/services/users.ts");
    await createUser(running.db, running.config.argon2, { email });
    await forgot(new Browser(running.url), email);
    const browser = new Browser(running.url);
    const password = strongPassword();
    const end = await browser.request(await resetLink(running, email));
    const done = last(await browser.follow(end.url, { form: { csrf: csrfToken(end.body), new_password: password } }));
    t.equal(done.url.pathname, "/account");
    t.ok((await findUserByEmail(running.db, email))?.passwordHash, "now has a password");
    t.equal((await queuedEmails(running.db, email, "password-changed")).length, 1, "and is notified");
  });

  t.test("refusals: a used, expired, superseded, wrong-purpose or unknown link", async (t) => {
    const user = await makeUser(running);
    const browser = new Browser(running.url);

    await forgot(browser, user.email);
    const first = await resetLink(running, user.email, 1);
    await forgot(browser, user.email);
    const second = await resetLink(running, user.email, 2);
    const superseded = await browser.request(first);
    t.equal(superseded.status, 400, "the older link stops working once a newer one is sent");
    t.match(superseded.body, /newer link/);

    const used = await submitNewPassword(new Browser(running.url), second, strongPassword());
    t.equal(used.status, 303);
    const again = await submitNewPassword(new Browser(running.url), second, strongPassword());
    t.equal(again.status, 400, "a used link is refused");
    t.match(again.body, /already used/);

    await forgot(browser, user.email);
    const third = await resetLink(running, user.email, 3);
    await running.db.prisma.emailLinkToken.updateMany({ where: { userId: user.id, purpose: "password-reset", usedAt: null, supersededAt: null }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const expired = await browser.request(third);
    t.equal(expired.status, 400, "an expired link is refused");
    t.match(expired.body, /expired/);

    await forgot(browser, user.email);
    const fourth = await resetLink(running, user.email, 4);
    const token = fourth.pathname.split("/").pop()!;
    const wrong = await browser.request(`/email/verify/${token}`);
    t.equal(wrong.status, 400, "a reset link does not verify an email");
    const stillGood = await browser.request(fourth);
    t.equal(stillGood.status, 200, "and stays usable for its own purpose");

    const unknown = await browser.request(`/password/reset/${"A".repeat(43)}`);
    t.equal(unknown.status, 400, "an unknown token is refused");
    const junk = await browser.request(`/password/reset/${"x".repeat(99)}`);
    t.equal(junk.status, 400, "so is one of the wrong shape");

    const refused = (await auditOf(running, ["email_link.refused"])).map((e) => e.data.reason);
    for (const reason of ["superseded", "used", "expired", "wrong_purpose", "unknown"]) t.ok(refused.includes(reason), `audited: ${reason}`);
    const all = await running.db.prisma.auditEvent.findMany();
    for (const link of [first, second, third, fourth]) t.notOk(all.some((e) => e.data.includes(link.pathname.split("/").pop()!)), "no token in the audit log");
  });

  t.test("two parallel uses of one link: exactly one succeeds", async (t) => {
    const user = await makeUser(running);
    await forgot(new Browser(running.url), user.email);
    const link = await resetLink(running, user.email);
    const [a, b] = [new Browser(running.url), new Browser(running.url)];
    const [pa, pb] = await Promise.all([a.request(link), b.request(link)]);
    const results = await Promise.all([
      a.request(link, { form: { csrf: csrfToken(pa.body), new_password: strongPassword() } }),
      b.request(link, { form: { csrf: csrfToken(pb.body), new_password: strongPassword() } }),
    ]);
    t.same(results.map((r) => r.status).sort(), [303, 400]);
  });
});

t.test("forgotten password: rate limits", async (t) => {
  const running = await startApp(t, { env: { EMAIL_RATE_LIMIT_PER_IP: "3" } });
  const browser = new Browser(running.url);
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push((await forgot(browser, uniqueEmail("limit"))).status);
  t.same(statuses, [200, 200, 200, 429], "per client address");

  // Behind a trusted proxy: IPv6 clients are counted per /64.
  const proxied = await startApp(t, { env: { EMAIL_RATE_LIMIT_PER_IP: "2", TRUST_PROXY: "loopback" } });
  const from = (ip: string) => new Browser(proxied.url, { "x-forwarded-for": ip });
  t.equal((await forgot(from("2001:db8:1:2::1"), uniqueEmail())).status, 200);
  t.equal((await forgot(from("2001:db8:1:2::2"), uniqueEmail())).status, 200);
  t.equal((await forgot(from("2001:db8:1:2:ffff::3"), uniqueEmail())).status, 429, "another address of the same /64 shares its budget");
  t.equal((await forgot(from("2001:db8:1:3::1"), uniqueEmail())).status, 200, "another /64 has its own");

  const other = await startApp(t, { env: { EMAIL_RATE_LIMIT_PER_IP: "100" } });
  const user = await makeUser(other);
  const b = new Browser(other.url);
  for (let i = 0; i < 7; i++) t.equal((await forgot(b, user.email)).status, 200, "the same answer over the address's limit");
  await waitForEmails(other.db, user.email, "password-reset", 5);
  await settle();
  t.equal((await queuedEmails(other.db, user.email, "password-reset")).length, 5, "at most 5 emails an hour per address");
});

t.test("email verification", async (t) => {
  const running = await startApp(t);
  const user = await makeUser(running);
  const { browser, account } = await openAccount(running, user);
  t.match(account.body, /<button type="submit" class="secondary">Resend verification email<\/button>/);
  const find = createFindAccount(running.db);
  const claims = async () => (await (await find({} as never, user.id))!.claims("id_token", "openid email", {}, []));
  t.equal((await claims()).email_verified, false, "email_verified is false at first");

  const sent = last(await browser.follow("/account/email/verification", { form: { csrf: csrfToken(account.body) } }));
  t.match(sent.body, /We sent a verification link/);
  const mail = await latestEmail(running.db, user.email, "verify-email");
  const link = linkIn(mail.text, running.url);
  t.match(link.pathname, /^\/email\/verify\//);
  const page = await new Browser(running.url).request(link);
  t.equal(page.status, 200);
  t.match(page.body, /Your email is verified\./);
  t.equal(page.headers.get("cache-control"), "no-store");
  t.equal((await claims()).email_verified, true, "email_verified is true in ID tokens and userinfo");
  t.notMatch(last(await browser.follow("/account")).body, /Resend verification email/);
  t.equal((await new Browser(running.url).request(link)).status, 400, "the link works once");
});

t.test("admin: email_verified at creation, and invitations", async (t) => {
  const running = await startApp(t);
  const admin = new AdminApi(running, (await makeAdminClient(running, "admin:write admin:read")).token);
  const created = await admin.post("/admin/v1/users", { email: uniqueEmail("vouched"), email_verified: true });
  t.equal(created.status, 201);
  t.equal(created.json.email_verified, true);
  const find = createFindAccount(running.db);
  t.equal((await (await find({} as never, created.json.id))!.claims("id_token", "openid email", {}, [])).email_verified, true);
  t.equal((await admin.post("/admin/v1/users", { email: uniqueEmail(), email_verified: "yes" })).status, 400, "a boolean, nothing else");

  const invited = await admin.post("/admin/v1/users", { email: uniqueEmail("invited") });
  const sent = await admin.post(`/admin/v1/users/${invited.json.id}/invitation`);
  t.equal(sent.status, 202);
  const mail = await latestEmail(running.db, invited.json.email, "invitation");
  const link = linkIn(mail.text, running.url);
  t.match(link.pathname, /^\/invitation\//);

  const browser = new Browser(running.url);
  const page = await browser.request(link);
  t.equal(page.status, 200);
  t.match(page.body, /<label for="new_password">New password<\/label>/);
  t.match(page.body, /<button type="submit">Set password<\/button>/);
  t.match(page.body, /Add a passkey/);
  const password = strongPassword();
  const end = last(await browser.follow(`${link.pathname}/password`, { form: { csrf: csrfToken(page.body), new_password: password } }));
  t.equal(end.url.pathname, "/account", "the invited user is signed in");
  t.equal((await findUserByEmail(running.db, invited.json.email))?.emailVerified, true);
  t.equal((await new Browser(running.url).request(link)).status, 400, "the invitation works once");

  const again = await admin.post(`/admin/v1/users/${invited.json.id}/invitation`);
  t.equal(again.status, 409, "no invitation for a user who can sign in");
  t.equal(again.json.error, "conflict");
  t.equal((await admin.post(`/admin/v1/users/00000000-0000-0000-0000-000000000000/invitation`)).status, 404);
  const reader = new AdminApi(running, (await makeAdminClient(running, "admin:read")).token);
  t.equal((await reader.post(`/admin/v1/users/${invited.json.id}/invitation`)).status, 403, "needs admin:write");
  const openapi = await admin.get("/admin/v1/openapi.json");
  t.ok(openapi.json.paths["/admin/v1/users/{id}/invitation"]?.post, "in the OpenAPI document");
});

t.test("REGISTRATION=off refuses invitations; invite and off have no sign-up page", async (t) => {
  const off = await startApp(t, { env: { REGISTRATION: "off" } });
  const admin = new AdminApi(off, (await makeAdminClient(off, "admin:write")).token);
  const user = await admin.post("/admin/v1/users", { email: uniqueEmail() });
  const refused = await admin.post(`/admin/v1/users/${user.json.id}/invitation`);
  t.equal(refused.status, 400);
  t.match(refused.json.error_description, /REGISTRATION=off/);
  t.equal((await new Browser(off.url).request("/register")).status, 404);
  const invite = await startApp(t);
  t.equal((await new Browser(invite.url).request("/register")).status, 404);
  t.equal((await new Browser(invite.url).request("/register", { form: { email: uniqueEmail(), password: strongPassword() } })).status, 404);
});

t.test("registration (REGISTRATION=open)", async (t) => {
  const running = await startApp(t, { env: { REGISTRATION: "open" } });

  t.test("the sign-in page links to it and the page has its fields", async (t) => {
    const signIn = last(await new Browser(running.url).follow("/account"));
    t.match(signIn.body, /<a href="\/register">Create an account<\/a>/);
    const page = await new Browser(running.url).request("/register");
    t.equal(page.status, 200);
    for (const label of ["Email", "Name", "Password"]) t.match(page.body, new RegExp(`<label for="[a-z]+">${label}</label>`));
    t.match(page.body, /<button type="submit">Create account<\/button>/);
  });

  async function register(browser: Browser, fields: Record<string, string>) {
    const page = await browser.request("/register");
    return browser.request("/register", { form: { csrf: csrfToken(page.body), ...fields } });
  }

  t.test("a new and an existing email get byte-identical answers; the owner is told instead", async (t) => {
    const existing = await makeUser(running);
    const fresh = uniqueEmail("fresh");
    const browser = new Browser(running.url);
    await browser.request("/register");
    const a = await register(browser, { email: fresh, name: "Fresh", password: strongPassword() });
    const b = await register(browser, { email: existing.email, name: "Fresh", password: strongPassword() });
    t.equal(a.status, 200);
    t.equal(b.status, a.status);
    t.match(a.body, registrationAnswer);
    t.equal(normalise(b.body), normalise(a.body));
    await waitForEmails(running.db, fresh, "verify-email");
    await waitForEmails(running.db, existing.email, "registration-attempt");
    const created = await findUserByEmail(running.db, fresh);
    t.equal(created?.emailVerified, false, "created unverified");
    t.equal(created?.name, "Fresh");
    t.equal((await findUserByEmail(running.db, existing.email))?.passwordHash, (await findUserByEmail(running.db, existing.email))?.passwordHash);
    t.same(await queuedEmails(running.db, existing.email, "verify-email"), [], "the existing account is untouched");
  });

  t.test("a common or short password is refused at once, for any address", async (t) => {
    const browser = new Browser(running.url);
    const res = await register(browser, { email: uniqueEmail(), password: "password123" });
    t.equal(res.status, 400);
    t.match(res.body, /too common/);
    t.equal((await register(browser, { email: uniqueEmail(), password: "short" })).status, 400);
    t.equal((await register(browser, { email: "not an email", password: strongPassword() })).status, 400);
    t.equal((await browser.request("/register", { form: { email: uniqueEmail(), password: strongPassword() } })).status, 403, "CSRF");
  });
});

t.test("gatehouse users invite", async (t) => {
  const { runCli } = await import("../helpers/processes.ts");
  const running = await startApp(t);
  const env = { DATABASE_URL: running.config.databaseUrl, KEYS_DIR: running.config.keysDir, EMAIL_OUTBOX_DIR: running.config.email.outboxDir, ISSUER: running.url };
  const email = uniqueEmail("cli");
  const result = await runCli(["users", "invite", "--email", email, "--name", "Cli", "--role", "editor"], env);
  t.equal(result.code, 0, result.stderr);
  const printed = JSON.parse(result.stdout) as { id: string; email: string };
  t.same(Object.keys(printed).sort(), ["email", "id"]);
  t.equal(printed.email, email);
  const mail = await latestEmail(running.db, email, "invitation");
  t.equal((await new Browser(running.url).request(linkIn(mail.text, running.url))).status, 200);

  const off = await runCli(["users", "invite", "--email", uniqueEmail()], { ...env, REGISTRATION: "off" });
  t.not(off.code, 0);
  t.match(off.stderr, /^gatehouse: invitations are off.*REGISTRATION=off/);
  t.equal(off.stderr.trim().split("\n").length, 1, "one line");
});

t.test("with email off (production without SMTP_URL): no links, no pages, invitations refused", async (t) => {
  const { buildTestApp } = await import("../helpers/http-flow.ts");
  const { accountSignInUrl } = await import("../../src/oidc/account-client.ts");
  const { sendInvitation } = await import("../../src/services/account-lifecycle.ts");
  const { createUser } = await import("../../src/services/users.ts");
  const env = { NODE_ENV: "production", COOKIE_SECRETS: "c".repeat(32), MASTER_KEYS: Buffer.alloc(32, 9).toString("base64"), REGISTRATION: "open" };
  const { app, config, db } = await buildTestApp(t, { env });
  t.equal(config.email.mode, "off");

  const auth = await app.inject({ method: "GET", url: new URL(accountSignInUrl(config.issuer)).pathname + new URL(accountSignInUrl(config.issuer)).search });
  const cookie = ([] as string[]).concat(auth.headers["set-cookie"] ?? []).map((line) => line.split(";")[0]).join("; ");
  const signIn = await app.inject({ method: "GET", url: new URL(auth.headers.location as string, config.issuer).pathname, headers: { cookie } });
  t.equal(signIn.statusCode, 200);
  t.match(signIn.body, /<button type="submit">Sign in<\/button>/);
  t.notMatch(signIn.body, /Forgot password\?/, "no Forgot password? link");
  t.notMatch(signIn.body, /Create an account/, "no Create an account link, even with REGISTRATION=open");
  for (const url of ["/password/forgot", "/register"]) t.equal((await app.inject({ method: "GET", url })).statusCode, 404, `${url} is 404`);

  const user = await createUser(db, config.argon2, { email: uniqueEmail("off") });
  await t.rejects(sendInvitation(app.context.lifecycle, user.id, { actorType: "operator", actorId: "test" }), { message: /email is off/ });
});

t.test("a link acts on its own user only, whoever is signed in", async (t) => {
  const running = await startApp(t);
  const [alice, bob] = [await makeUser(running), await makeUser(running)];
  const { browser, account } = await openAccount(running, alice);
  await browser.follow("/account/email/verification", { form: { csrf: csrfToken(account.body) } });
  const link = linkIn((await latestEmail(running.db, alice.email, "verify-email")).text, running.url);
  const bobs = await openAccount(running, bob);
  t.equal((await bobs.browser.request(link)).status, 200, "Bob opens Alice's link");
  t.equal((await findUserByEmail(running.db, alice.email))?.emailVerified, true, "Alice's email is verified");
  t.equal((await findUserByEmail(running.db, bob.email))?.emailVerified, false, "Bob's is not");
  const events = await auditOf(running, ["email_link.used"]);
  t.same(events.map((e) => e.userId), [alice.id], "the use is Alice's");
});

t.test("hostile form input is refused before any work", async (t) => {
  const running = await startApp(t, { env: { REGISTRATION: "open" } });
  const browser = new Browser(running.url);
  const form = await browser.request("/password/forgot");
  const csrf = csrfToken(form.body);
  const send = (path: string, fields: string) =>
    fetch(new URL(path, running.url), { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", cookie: browser.jar.header(new URL(path, running.url)) }, body: fields, redirect: "manual" });
  t.equal((await send("/password/forgot", `csrf=${csrf}&email=${"a".repeat(400)}@example.test`)).status, 400, "an oversized email");
  t.equal((await send("/password/forgot", `csrf=${csrf}&email=a@example.test&email=b@example.test`)).status, 400, "a repeated field");
  t.equal((await send("/password/forgot", `csrf=${csrf}&email=a@example.test&extra=1`)).status, 400, "an unknown field");
  t.equal((await send("/register", `csrf=${csrf}&email=a@example.test&password=${"p".repeat(2000)}`)).status, 400, "an oversized password");
  t.equal((await browser.request(`/password/reset/${"a".repeat(150)}`)).status, 400, "an oversized token");
  await settle();
  t.equal(await running.db.prisma.emailOutbox.count(), 0, "nothing queued");
  t.equal(await running.db.prisma.user.count(), 0, "nobody registered");
});

t.test("forgotten password: the answer takes as long for a known email as for an unknown one", async (t) => {
  // The server in its own process, as clients meet it: an in-process client
  // would share the server's event loop and time the work done after the answer.
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { processDatabase } = await import("../helpers/databases.ts");
  const { startServer } = await import("../helpers/processes.ts");
  const { loadMasterKeyRing } = await import("../../src/crypto/master-keys.ts");
  const { auditKeyOf } = await import("../../src/services/audit.ts");
  const { createUser } = await import("../../src/services/users.ts");
  const { database, env } = await processDatabase(t);
  const outboxDir = mkdtempSync(join(tmpdir(), "gatehouse-outbox-"));
  t.teardown(() => rmSync(outboxDir, { recursive: true, force: true }));
  const server = await startServer(t, { ...env, EMAIL_OUTBOX_DIR: outboxDir, EMAIL_RATE_LIMIT_PER_IP: "1000" });
  const db = await database.open({ auditKey: auditKeyOf(loadMasterKeyRing({ keysDir: env.KEYS_DIR, masterKeys: undefined, production: false })) });
  const emails: string[] = [];
  // Without passwords: no argon2 here, and a passkey-only user is sent a reset link too.
  for (let i = 0; i < 9; i++) emails.push((await createUser(db, { memoryCost: 19456, timeCost: 2, parallelism: 1 }, { email: uniqueEmail("timed") })).email);

  const browser = new Browser(server.url);
  const csrf = csrfToken((await browser.request("/password/forgot")).body);
  const timed = async (email: string) => {
    const started = performance.now();
    const res = await browser.request("/password/forgot", { form: { csrf, email } });
    t.equal(res.status, 200);
    return performance.now() - started;
  };
  const known: number[] = [];
  const unknown: number[] = [];
  // Interleaved, so that the machine's load affects both alike.
  for (const email of emails) {
    known.push(await timed(email));
    unknown.push(await timed(uniqueEmail("nobody")));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  t.comment(`median answer: known ${median(known).toFixed(1)} ms, unknown ${median(unknown).toFixed(1)} ms`);
  // The lookup and the email happen after the answer: neither answer waits on them.
  t.ok(Math.abs(median(known) - median(unknown)) < 25, "medians within 25 ms of each other");
  for (const email of emails) await waitForEmails(db, email, "password-reset");
});

t.test("no link token in the log: request URLs are logged with the token redacted", async (t) => {
  const { captureLogs } = await import("../helpers/http-flow.ts");
  const { startSmtpServer } = await import("../helpers/smtp.ts");
  const { redactUrl, loggerOptions } = await import("../../src/logger.ts");
  t.equal(redactUrl("/password/reset/abc?x=1"), "/password/reset/[Redacted]?x=1");
  t.equal(redactUrl("/invitation/abc/passkey/options"), "/invitation/[Redacted]/passkey/options");
  t.equal(redactUrl("/email/verify/abc"), "/email/verify/[Redacted]");
  // Over SMTP: files mode (development) logs the links it writes, on purpose (docs/email.md).
  const smtp = await startSmtpServer(t);
  const { logs, logger } = captureLogs("info");
  // Gatehouse's own logger options (redaction, serializers), writing where the test reads.
  const ours = { ...(loggerOptions({ logLevel: "info" }) as object), stream: (logger as { stream: unknown }).stream } as never;
  const running = await startApp(t, { env: { SMTP_URL: smtp.url, LOG_LEVEL: "info" }, logger: ours });
  const user = await makeUser(running);
  const browser = new Browser(running.url);
  await forgot(browser, user.email);
  const link = await resetLink(running, user.email);
  t.equal((await submitNewPassword(browser, link, strongPassword())).status, 303);
  t.equal((await browser.request(link)).status, 400);
  const token = link.pathname.split("/").pop()!;
  t.ok(logs.some((l) => JSON.stringify(l).includes("/password/reset/[Redacted]")), "the requests were logged");
  t.notOk(logs.some((l) => JSON.stringify(l).includes(token)), "without the token");
});
