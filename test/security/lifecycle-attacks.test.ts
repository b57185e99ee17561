/**
 * Attacks on the account lifecycle by email (docs/account-lifecycle.md) over
 * HTTP, against a listening server: each test is one attack and asserts the
 * secure behaviour. Links are read from the email outbox, as the mailbox's
 * owner (or whoever else reads it) would.
 */
import t from "tap";
import { findUserByEmail } from "../../src/db/users.ts";
import { Browser, csrfToken, isSignInPage, last, makeUser, strongPassword, uniqueEmail, type RunningApp, type TestUser } from "../helpers/http-flow.ts";
import { latestEmail, linkIn, waitForEmails } from "../helpers/outbox.ts";
import { AdminApi, makeAdminClient } from "../helpers/admin.ts";
import { openAccount, startPasskeyApp } from "../helpers/passkey-app.ts";

const running = await startPasskeyApp(t, { REGISTRATION: "open", SIGNIN_MAX_FAILURES_PER_IP: "1000", EMAIL_RATE_LIMIT_PER_IP: "1000" });

/** Asks for a reset link for `email` from a new browser (GET the form, POST it). */
async function forgot(running: RunningApp, email: string) {
  const browser = new Browser(running.url);
  const form = await browser.request("/password/forgot");
  const res = await browser.request("/password/forgot", { form: { csrf: csrfToken(form.body), email } });
  if (res.status !== 200) throw new Error(`forgot: ${res.status}`);
}

/** Opens `link` in `browser` and submits a new password; the last page reached. */
async function setPasswordThrough(browser: Browser, link: URL, action: string, password: string) {
  const page = await browser.request(link);
  if (page.status !== 200) return page;
  return last(await browser.follow(action, { form: { csrf: csrfToken(page.body), new_password: password } }));
}

async function canSignIn(user: Pick<TestUser, "email" | "password">): Promise<boolean> {
  const browser = new Browser(running.url);
  const page = last(await browser.follow("/account"));
  if (!isSignInPage(page.body)) return false;
  const end = last(await browser.submit(page, { email: user.email, password: user.password }));
  return end.url.pathname === "/account" && end.status === 200;
}

/**
 * Attack: an invitation link stays usable after the invited person got a
 * password another way. An operator invites alice@ (a week-long link); Alice
 * uses "Forgot password?" instead (a one-hour link, another purpose, so the
 * invitation is not superseded) and signs in with her own password. Whoever
 * reads the invitation email later in that week (a shared or forwarded
 * mailbox, a mail archive, a helpdesk ticket with the email pasted in) opens
 * it and replaces Alice's password, and is signed in as Alice; her sessions
 * are revoked.
 *
 * Secure behaviour: an invitation is for a user who cannot sign in yet
 * (sendInvitation refuses a user with a password or a passkey for this very
 * reason), so accepting it is refused once the user has a password or a
 * passkey; or setting a password by any route supersedes the pending
 * invitation. Fix: check `user.passwordHash || countPasskeysOfUser > 0` in
 * acceptInvitationWithPassword / acceptInvitationWithPasskey (and in
 * openEmailLink for "invitation"), and/or supersede live invitation links in
 * setPasswordWithLink and changeOwnPassword.
 */
t.test("an invitation link no longer works once the user has set a password another way", async (t) => {
  const admin = new AdminApi(running, (await makeAdminClient(running, "admin:write admin:read")).token);
  const invited = await admin.post("/admin/v1/users", { email: uniqueEmail("invited") });
  t.equal(invited.status, 201);
  t.equal((await admin.post(`/admin/v1/users/${invited.json.id}/invitation`)).status, 202);
  const invitation = linkIn((await latestEmail(running.db, invited.json.email, "invitation")).text, running.url);

  // Alice uses "Forgot password?" and sets her own password.
  await forgot(running, invited.json.email);
  const reset = linkIn((await latestEmail(running.db, invited.json.email, "password-reset")).text, running.url);
  const alicePassword = strongPassword();
  const afterReset = await setPasswordThrough(new Browser(running.url), reset, reset.pathname, alicePassword);
  t.equal(afterReset.url.pathname, "/account", "Alice set her password and is signed in");
  t.ok(await canSignIn({ email: invited.json.email, password: alicePassword }), "Alice signs in with her password");

  // Days later, someone else opens the invitation email.
  const attacker = new Browser(running.url);
  const page = await attacker.request(invitation);
  t.not(page.status, 200, "the invitation page is refused for a user who already has a password");
  const attackerPassword = strongPassword();
  const end = await setPasswordThrough(attacker, invitation, `${invitation.pathname}/password`, attackerPassword);
  t.not(end.url.pathname, "/account", "the invitation link does not sign the attacker in as Alice");
  t.notOk(await canSignIn({ email: invited.json.email, password: attackerPassword }), "the invitation link does not replace Alice's password");
  t.ok(await canSignIn({ email: invited.json.email, password: alicePassword }), "Alice's own password still works");
});

/**
 * Attack: a password-reset link stays usable for its hour after the password
 * was changed by other means. Bob asks for a reset, then remembers his
 * password and, worried, changes it on /account (which signs out his other
 * devices). The reset email, still in a mailbox someone else can read,
 * replaces the new password and signs that person in.
 *
 * Secure behaviour (OWASP Forgot Password Cheat Sheet: tokens are
 * invalidated when the password changes): a change of password on /account
 * supersedes the user's live reset (and invitation) links. Fix: in
 * changeOwnPassword, inside its transaction, mark the user's live
 * "password-reset" and "invitation" links superseded (one updateMany).
 */
t.test("a reset link no longer works after the password was changed on /account", async (t) => {
  const user = await makeUser(running);
  await forgot(running, user.email);
  const reset = linkIn((await latestEmail(running.db, user.email, "password-reset")).text, running.url);

  // Bob changes his password on /account.
  const account = await openAccount(running, user);
  const newPassword = strongPassword();
  const changed = last(await account.browser.follow("/account/password", { form: { csrf: account.csrf, current_password: user.password, new_password: newPassword } }));
  t.equal(changed.url.search, "?notice=password-changed", "the password was changed on /account");

  // Someone else opens the older reset link.
  const attacker = new Browser(running.url);
  const page = await attacker.request(reset);
  t.not(page.status, 200, "the reset link is refused after the password changed");
  const attackerPassword = strongPassword();
  await setPasswordThrough(attacker, reset, reset.pathname, attackerPassword);
  t.notOk(await canSignIn({ email: user.email, password: attackerPassword }), "the old reset link does not replace the new password");
  t.ok(await canSignIn({ email: user.email, password: newPassword }), "Bob's new password still works");
});

/**
 * Attack: account pre-hijacking through open registration (Sudhodanan and
 * Paverd, "Pre-hijacked accounts", USENIX Security 2022: the "trojan
 * identifier" attack, with a passkey as the trojan). With REGISTRATION=open:
 *
 * 1. The attacker registers victim@ with a password of their own. The
 *    account is created unverified, but signing in does not need a verified
 *    email: the attacker signs in and adds a passkey on /account.
 * 2. The victim, who never registered, later uses "Forgot password?" (or
 *    registers, gets "someone tried to register", and follows its link to
 *    "Forgot password?"), sets a password through the emailed link, and
 *    uses the account. The reset revokes sessions and grants, but keeps the
 *    attacker's passkey.
 * 3. The attacker signs in with the passkey, as the victim, at any time.
 *
 * Secure behaviour: credentials added before the mailbox was proven do not
 * survive the mailbox owner's claim of the account: either an unverified
 * account cannot sign in (or add passkeys / an authenticator app) until its
 * email is verified, or the first verification of an address by a reset
 * link removes the passkeys and the authenticator app that were added while
 * it was unverified (and the reset notice says so).
 */
t.test("an account signed up for someone else's address gives its registrant no way in", async (t) => {
  const victimEmail = uniqueEmail("victim");
  const attackerPassword = strongPassword();

  // 1. The attacker registers the victim's address, then tries to sign in to
  //    add a passkey or an authenticator app that would outlive the owner's
  //    reset. Refused, with the answer to a wrong password.
  const registrar = new Browser(running.url);
  const form = await registrar.request("/register");
  t.equal(form.status, 200);
  const registered = await registrar.request("/register", { form: { csrf: csrfToken(form.body), email: victimEmail, name: "Victim", password: attackerPassword } });
  t.equal(registered.status, 200);
  await waitForEmails(running.db, victimEmail, "verify-email");
  t.notOk(await canSignIn({ email: victimEmail, password: attackerPassword }), "the registrant cannot sign in before the address is verified");
  const row = await findUserByEmail(running.db, victimEmail);
  t.equal(await running.db.prisma.passkey.count({ where: { userId: row!.id } }), 0, "so nothing was added to the account");
  const events = await running.db.prisma.auditEvent.findMany({ where: { userId: row!.id, type: "sign_in.failed" } });
  t.same(events.map((e) => (JSON.parse(e.data) as { reason: string }).reason), ["email_unverified"], "audited with its reason");

  // 2. The owner claims the address with "Forgot password?": the reset proves
  //    the mailbox, sets their password and verifies the address.
  await forgot(running, victimEmail);
  const reset = linkIn((await latestEmail(running.db, victimEmail, "password-reset")).text, running.url);
  const victimPassword = strongPassword();
  const afterReset = await setPasswordThrough(new Browser(running.url), reset, reset.pathname, victimPassword);
  t.equal(afterReset.url.pathname, "/account", "the owner set a password and is signed in");
  t.notOk(await canSignIn({ email: victimEmail, password: attackerPassword }), "the registrant's password is gone");
  t.ok(await canSignIn({ email: victimEmail, password: victimPassword }), "the owner signs in from now on");
});

t.test("a self-registered account signs in once its address is verified", async (t) => {
  const email = uniqueEmail("self");
  const password = strongPassword();
  const browser = new Browser(running.url);
  const form = await browser.request("/register");
  await browser.request("/register", { form: { csrf: csrfToken(form.body), email, name: "Self", password } });
  const [verify] = await waitForEmails(running.db, email, "verify-email");
  t.notOk(await canSignIn({ email, password }), "not before");
  const verified = await new Browser(running.url).request(linkIn(verify!.text, running.url));
  t.equal(verified.status, 200);
  t.match(verified.body, /Your email is verified\./);
  t.ok(await canSignIn({ email, password }), "after");
});

/** The /account page's "Signed in as" line, in `browser`, or undefined when it is not signed in. */
async function signedInAs(browser: Browser): Promise<string | undefined> {
  const page = last(await browser.follow("/account"));
  if (page.url.pathname !== "/account" || page.status !== 200) return undefined;
  return /Signed in as[^<]*<[^>]*>([^<]+)</.exec(page.body)?.[1] ?? page.body.match(/Signed in as[\s\S]{0,200}/)?.[0];
}

/**
 * Attack: login CSRF through the attacker's own reset link. The CSRF token of
 * the reset (and invitation) page is HMAC(`email-link:<token>`): bound to the
 * link, not to the browser. The attacker asks for a reset of their own
 * account, opens the link to read the form's token, and puts an
 * auto-submitting form on their site: POST /password/reset/<token> with that
 * token and a password they choose. The victim's browser, visiting the site,
 * posts it (a cross-site top-level POST carries none of Gatehouse's
 * SameSite=Lax cookies, and needs none), receives the sign-in ticket cookie
 * and follows the redirect: the victim is now signed in to Gatehouse as the
 * attacker, replacing their own session, and every relying party they then
 * sign in to (single sign-on) gets the attacker's account: what the victim
 * stores or links there (a payment method, a passkey added on /account,
 * documents) is the attacker's.
 *
 * Secure behaviour: the forms a link opens carry a token bound to the
 * browser as well as to the link, like the anonymous forms (the form cookie,
 * account/browser-cookies.ts formBinding), so a form prepared in another
 * browser is refused with 403. Fix (lifecycle-routes.ts): linkCsrf and
 * checkLinkCsrf bind `email-link:${token}:${formBinding(request, reply, secure)}`.
 */
t.test("a reset form prepared in the attacker's browser does not sign the victim's browser in (login CSRF)", async (t) => {
  const attackerUser = await makeUser(running);
  const victimUser = await makeUser(running);

  // The victim is signed in to Gatehouse.
  const victim = (await openAccount(running, victimUser)).browser;
  t.match(await signedInAs(victim), victimUser.email, "the victim is signed in as themselves");

  // The attacker prepares the form in their own browser.
  await forgot(running, attackerUser.email);
  const reset = linkIn((await latestEmail(running.db, attackerUser.email, "password-reset")).text, running.url);
  const prepared = await new Browser(running.url).request(reset);
  t.equal(prepared.status, 200);
  const form = { csrf: csrfToken(prepared.body), new_password: strongPassword() };

  // The victim's browser posts it from the attacker's site: a cross-site POST sends no SameSite=Lax cookie.
  const posted = await fetch(reset, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: "https://attacker.example", "sec-fetch-site": "cross-site", "user-agent": "gatehouse-tests" },
    body: new URLSearchParams(form).toString(),
    redirect: "manual",
  });
  t.equal(posted.status, 403, "a link's form posted from another browser is refused");
  victim.jar.store(reset, posted.headers.getSetCookie());
  const location = posted.headers.get("location");
  if (location) {
    let page = last(await victim.follow(new URL(location, running.url)));
    // oidc-provider ends the victim's own session first with an auto-submitting form (a browser runs its script).
    const logout = /<form method="post" action="([^"]+)">\s*<input type="hidden" name="xsrf" value="([^"]+)"\/>/.exec(page.body);
    if (logout) page = last(await victim.follow(new URL(logout[1]!), { form: { xsrf: logout[2]!, logout: "yes" } }));
  }
  t.notMatch((await signedInAs(victim)) ?? "", attackerUser.email, "the victim's browser is not signed in as the attacker");
});

/**
 * Attack: registration enumeration through the sign-in page. /register gives
 * the same answer for a new and a registered address, but an account made by
 * /register signs in at once, unverified, with the password given. So: 
 * register X with a password P, then sign in as X with P. Success: X had no
 * account (and the attacker now holds one in X's name: see the pre-hijacking
 * test). "Invalid email or password.": X has an account. The equal answers
 * of /register are undone by the next request.
 *
 * Secure behaviour: an account created by /register cannot sign in (or gets
 * the same "Invalid email or password." answer) until its email is
 * verified, so signing in after registering tells nothing about the
 * address. Fix: in signInWithPassword (and the passkey path), refuse a
 * self-registered user whose email is not verified, with the same answer as
 * a wrong password; the verification link then signs in (sign-in ticket),
 * as a reset does.
 */
t.test("signing in right after registering does not tell whether the address already had an account", async (t) => {
  const existing = await makeUser(running);
  const fresh = uniqueEmail("fresh");
  const password = strongPassword();
  const register = async (email: string) => {
    const browser = new Browser(running.url);
    const form = await browser.request("/register");
    const res = await browser.request("/register", { form: { csrf: csrfToken(form.body), email, name: "Probe", password } });
    t.equal(res.status, 200, `the same answer for ${email}`);
  };
  await register(existing.email);
  await register(fresh);
  await waitForEmails(running.db, existing.email, "registration-attempt");
  await waitForEmails(running.db, fresh, "verify-email");

  const existingAnswer = await canSignIn({ email: existing.email, password });
  const freshAnswer = await canSignIn({ email: fresh, password });
  t.equal(existingAnswer, false, "the registered address's owner keeps their account");
  t.equal(freshAnswer, existingAnswer, "a new address's unverified account does not sign in either: the two cases look the same");
});

/**
 * Attack: content injection into Gatehouse's own emails. /register takes a
 * free-text name (200 characters) and a victim's address; the verification
 * email, sent from the operator's domain to the victim, opens with
 * "Hello <name>,". With a name such as "your account is locked. Restore it at
 * https://gatehouse-support.example/restore now" the victim receives a
 * genuine, DKIM-signed phishing message whose text part shows the attacker's
 * URL (mail clients make it a link). HTML escaping stops markup but not this.
 *
 * Secure behaviour: an email sent to an address that has not been verified
 * does not carry text chosen by whoever typed the address: the
 * verification email of a self-registration greets with a plain "Hello,"
 * (the name is shown only once the address is proven, or at least URLs are
 * not rendered in a name). Fix (account-lifecycle.ts registerAccount): queue
 * the verification email with recipientName undefined.
 */
t.test("a name typed at registration does not put the attacker's text and URL into the email sent to the address", async (t) => {
  const victimEmail = uniqueEmail("phished");
  const name = "your account is locked. Restore it at https://gatehouse-support.example/restore now";
  const browser = new Browser(running.url);
  const form = await browser.request("/register");
  t.equal((await browser.request("/register", { form: { csrf: csrfToken(form.body), email: victimEmail, name, password: strongPassword() } })).status, 200);
  const mail = await latestEmail(running.db, victimEmail, "verify-email");
  t.notMatch(mail.text, "gatehouse-support.example", "the attacker's URL is not in the email");
});
