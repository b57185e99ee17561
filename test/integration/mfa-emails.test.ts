/**
 * Where two-step verification meets the email flows: the user is emailed
 * when it is turned on, turned off, reset by an operator, and when a
 * recovery code signs them in (delivered over real SMTP and read as a mail
 * client would); and a password reset link, which proves only the mailbox,
 * never gets past the second step (docs/two-step-verification.md).
 */
import t from "tap";
import { Browser, csrfToken, last, makeUser, startApp, strongPassword } from "../helpers/http-flow.ts";
import { startSmtpServer } from "../helpers/smtp.ts";
import { linkIn, waitForEmails } from "../helpers/outbox.ts";
import { freshStep, isSecondFactorPage, turnOnTotp } from "../helpers/mfa.ts";
import { confirmTotpSetup, resetMfa, startTotpSetup, turnOffTotp } from "../../src/services/mfa.ts";
import { totpCode } from "../../src/auth/totp.ts";
import { cliOperator } from "../../src/services/actor.ts";

t.test("the user is emailed when two-step verification changes or a recovery code is used", async (t) => {
  const smtp = await startSmtpServer(t);
  const running = await startApp(t, { env: { SMTP_URL: smtp.url } });
  const user = await makeUser(running, { name: "Ada <b>Lovelace</b>" });
  const actor = { actorType: "user" as const, actorId: user.id };
  const mailTo = (subject: RegExp) => smtp.waitFor((m) => m.to.includes(user.email) && subject.test(m.parsed.subject ?? ""));

  const setup = await startTotpSetup(running.db, running.ring, user, running.config.issuer);
  const step = await freshStep();
  const codes = await confirmTotpSetup(running.db, running.ring, user.id, totpCode(setup.secret, step - 1), actor, running.config);
  t.equal(codes?.length, 10, "turned on");
  const on = await mailTo(/Two-step verification was turned on/);
  t.match(on.parsed.text, /turned on for your Gatehouse account/);
  t.match(on.parsed.html, /Hello Ada &lt;b&gt;Lovelace&lt;\/b&gt;,/, "the HTML part escapes the name");
  t.match(on.parsed.text, new RegExp(`${running.config.issuer}/account`), "links to the account page on the issuer");
  t.notMatch(on.raw, new RegExp(setup.secret), "the key is never in an email");

  // A recovery code signing in, over HTTP as a person does it.
  const browser = new Browser(running.url);
  const signIn = last(await browser.follow("/account"));
  const codePage = last(await browser.submit(signIn, { email: user.email, password: user.password }));
  t.ok(isSecondFactorPage(codePage.body), "the password leads to the code page");
  const recoveryPage = last(await browser.follow(`${codePage.url.pathname}?recovery=1`));
  const account = last(await browser.submit(recoveryPage, { recovery_code: codes![0]! }));
  t.equal(account.url.pathname, "/account", "the recovery code signs in");
  const used = await mailTo(/A recovery code was used/);
  t.match(used.parsed.text, /9 unused codes are\s+left/);
  t.notMatch(used.raw, new RegExp(codes![0]!), "the code itself is not in the email");

  await turnOffTotp(running.db, user.id, actor, running.config);
  const off = await mailTo(/Two-step verification was turned off/);
  t.match(off.parsed.text, /no longer asks for a code/);

  // An operator's reset is a turning off too, as far as the user can tell.
  await turnOnTotp(running, user);
  const before = smtp.messages.length;
  await resetMfa(running.db, user.id, cliOperator, running.config);
  await smtp.waitFor((m) => smtp.messages.indexOf(m) >= before && m.to.includes(user.email) && /turned off/.test(m.parsed.subject ?? ""));

  // Nothing changed, nothing sent: a reset of a user without the app emails nobody.
  const quiet = await makeUser(running);
  await resetMfa(running.db, quiet.id, cliOperator, running.config);
  const outbox = await running.db.prisma.emailOutbox.count({ where: { to: quiet.email } });
  t.equal(outbox, 0, "no notice for a reset that removed nothing");
});

t.test("a password reset link does not get past the second step", async (t) => {
  const running = await startApp(t);
  const user = await makeUser(running);
  const totp = await turnOnTotp(running, user);

  const browser = new Browser(running.url);
  const form = await browser.request("/password/forgot");
  await browser.request("/password/forgot", { form: { csrf: csrfToken(form.body), email: user.email } });
  const [email] = await waitForEmails(running.db, user.email, "password-reset");
  const link = linkIn(email!.text, running.url);
  const page = await browser.request(link);
  const chain = await browser.follow(link, { form: { csrf: csrfToken(page.body), new_password: strongPassword() } });
  const end = last(chain);
  t.ok(isSecondFactorPage(end.body), "after the new password, the code page, not the account");
  t.not(end.url.pathname, "/account");
  const probe = last(await new Browser(running.url).follow("/account"));
  t.not(probe.url.pathname, "/account", "(another browser is not signed in either)");

  const events = await running.db.prisma.auditEvent.findMany({ where: { userId: user.id, type: { startsWith: "sign_in." } }, orderBy: { seq: "asc" } });
  t.same(events.map((e) => [e.type, (JSON.parse(e.data) as { method?: string }).method]), [["sign_in.first_factor", "email_link"]], "the link is audited as a first factor, not a sign-in");

  const step = await freshStep();
  const signedIn = last(await browser.submit(end, { code: totp.code(step) }));
  t.equal(signedIn.url.pathname, "/account", "the code completes the sign-in");
  t.match(signedIn.body, /Signed in as/);
});
