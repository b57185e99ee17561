/**
 * Attacks on the account lifecycle by email (docs/account-lifecycle.md) over
 * HTTP, against a listening server: each test is one attack and asserts the
 * secure behaviour. Links are read from the email outbox, as the mailbox's
 * owner (or whoever else reads it) would.
 */
import t from "tap";
import { Browser, csrfToken, isSignInPage, last, makeClient, makeUser, strongPassword, uniqueEmail, type RunningApp, type TestUser } from "../helpers/http-flow.ts";
import { latestEmail, linkIn, waitForEmails } from "../helpers/outbox.ts";
import { AdminApi, makeAdminClient } from "../helpers/admin.ts";
import { authenticationOptions, openAccount, openPasskeySignIn, postJson, registrationOptions, sendAssertion, startPasskeyApp } from "../helpers/passkey-app.ts";
import { SoftAuthenticator } from "../helpers/soft-authenticator.ts";

const running = await startPasskeyApp(t, { REGISTRATION: "open", SIGNIN_MAX_FAILURES_PER_IP: "1000", EMAIL_RATE_LIMIT_PER_IP: "1000" });
const client = await makeClient(running, { name: "Lifecycle attack app", firstParty: true });

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
t.test("a passkey added to a registered but unverified account does not survive the owner's password reset", async (t) => {
  const victimEmail = uniqueEmail("victim");
  const attackerPassword = strongPassword();

  // 1. The attacker registers the victim's address and signs in.
  const registrar = new Browser(running.url);
  const form = await registrar.request("/register");
  t.equal(form.status, 200);
  const registered = await registrar.request("/register", { form: { csrf: csrfToken(form.body), email: victimEmail, name: "Victim", password: attackerPassword } });
  t.equal(registered.status, 200);
  await waitForEmails(running.db, victimEmail, "verify-email");
  const attackerAccount = await openAccount(running, { id: "", email: victimEmail, password: attackerPassword, name: "Victim" } as TestUser);
  const { challengeId, options } = await registrationOptions(attackerAccount);
  const authenticator = new SoftAuthenticator(running.url);
  const added = await postJson(attackerAccount.browser, "/account/passkeys", { challengeId, response: authenticator.register(options), name: "attacker" }, { "x-csrf-token": attackerAccount.csrf });
  t.equal(added.status, 201, "the attacker added a passkey to the unverified account");

  // 2. The victim claims the address with "Forgot password?".
  await forgot(running, victimEmail);
  const reset = linkIn((await latestEmail(running.db, victimEmail, "password-reset")).text, running.url);
  const victimPassword = strongPassword();
  const afterReset = await setPasswordThrough(new Browser(running.url), reset, reset.pathname, victimPassword);
  t.equal(afterReset.url.pathname, "/account", "the victim set a password and is signed in");

  // 3. The attacker signs in with the passkey.
  const signIn = await openPasskeySignIn(running, client);
  const assertion = await authenticationOptions(signIn);
  const res = await sendAssertion(signIn, { challengeId: assertion.challengeId, response: authenticator.assert(assertion.options) });
  t.not(res.status, 200, `the attacker's passkey no longer signs in to the victim's account (got ${res.status} ${JSON.stringify(res.json)})`);
});
