/**
 * Two-step verification on /account over HTTP: set-up (the key and an inline
 * SVG QR code, a first code turns it on, ten recovery codes shown once),
 * new recovery codes, turning it off; each needs a sign-in within
 * REAUTH_MAX_AGE, and signing in again then asks for the code too.
 */
import t from "tap";
import { Browser, csrfToken, errorParagraph, isSignInPage, last, makeUser, startApp, type Response, type TestUser } from "../helpers/http-flow.ts";
import { freshStep, isSecondFactorPage, shownRecoveryCodes, shownSecret } from "../helpers/mfa.ts";
import { totpCode } from "../../src/auth/totp.ts";
import { checkRecoveryCode } from "../../src/services/mfa.ts";

const running = await startApp(t, { env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
const { prisma } = running.db;

async function openAccount(browser: Browser, user: TestUser): Promise<Response> {
  let page = last(await browser.follow("/account"));
  if (isSignInPage(page.body)) page = last(await browser.submit(page, { email: user.email, password: user.password }));
  if (page.url.pathname !== "/account" || page.status !== 200) throw new Error(`not the account page: ${page.status}`);
  return page;
}

/** Moves the last sign-in of every session of `userId` back by `seconds`. */
async function ageSessions(userId: string, seconds: number) {
  for (const row of await prisma.oidcRecord.findMany({ where: { model: "Session", accountId: userId } })) {
    const payload = JSON.parse(row.payload) as { loginTs: number };
    payload.loginTs -= seconds;
    await prisma.oidcRecord.update({ where: { model_id: { model: row.model, id: row.id } }, data: { payload: JSON.stringify(payload) } });
  }
}

const auditTypes = async (userId: string) => (await prisma.auditEvent.findMany({ where: { userId, type: { startsWith: "mfa." } }, orderBy: { seq: "asc" } })).map((e) => e.type);

t.test("set up, new recovery codes, turn off", async (t) => {
  const user = await makeUser(running);
  const browser = new Browser(running.url);
  const account = await openAccount(browser, user);
  t.match(account.body, /<button type="submit">Set up authenticator app<\/button>/);
  const csrf = csrfToken(account.body);

  t.equal((await browser.request("/account/totp/setup", { method: "POST", form: {} })).status, 403, "no CSRF token: 403");
  const setup = await browser.request("/account/totp/setup", { form: { csrf } });
  t.equal(setup.status, 200);
  t.equal(setup.headers.get("cache-control"), "no-store", "the page with the key is not cached");
  t.match(setup.body, /<svg[^>]*viewBox/, "an inline SVG QR code");
  t.notMatch(setup.body, /https?:\/\/(?!www\.w3\.org)[^"]*qr/i, "drawn here, by no third-party service");
  const secret = shownSecret(setup.body);
  const row = await prisma.userTotp.findUniqueOrThrow({ where: { userId: user.id } });
  t.equal(row.confirmedAt, null, "stored, not yet on");
  t.notMatch(row.secretSealed, secret, "sealed");

  t.equal((await browser.request("/account/totp/confirm", { form: { csrf, code: "1".repeat(21) } })).status, 400, "an oversized code: 400");
  const wrong = await browser.request("/account/totp/confirm", { form: { csrf, code: "abcdef" } });
  t.equal(wrong.status, 400);
  t.ok(errorParagraph(wrong.body), "says the code is not right");
  t.equal(shownSecret(wrong.body), secret, "and shows the same key");
  const step = await freshStep();
  const on = await browser.request("/account/totp/confirm", { form: { csrf, code: totpCode(secret, step) } });
  t.equal(on.status, 200);
  const codes = shownRecoveryCodes(on.body);
  t.equal(codes.length, 10, "ten recovery codes");
  t.equal(on.headers.get("cache-control"), "no-store");

  const after = last(await browser.follow("/account"));
  t.match(after.body, /<span id="recovery-codes-left">10<\/span> recovery codes left/);
  t.match(after.body, /<button type="submit">Generate new recovery codes<\/button>/);
  t.match(after.body, /Turn off authenticator app<\/button>/);
  t.equal((await browser.request("/account/totp/setup", { form: { csrf } })).status, 409, "set-up again while on: 409");

  const again = await browser.request("/account/recovery-codes", { form: { csrf } });
  t.equal(again.status, 200);
  const newCodes = shownRecoveryCodes(again.body);
  t.equal(newCodes.length, 10);
  t.equal(newCodes.filter((c) => codes.includes(c)).length, 0, "all new");
  t.same(await checkRecoveryCode(running.db, user.id, codes[0]!), { ok: false, reason: "wrong_code" }, "the old codes no longer work");
  t.same(await checkRecoveryCode(running.db, user.id, newCodes[0]!), { ok: true, left: 9 }, "the new ones do");

  const off = await browser.request("/account/totp/disable", { form: { csrf } });
  t.equal(off.status, 303);
  t.equal(off.location?.href, `${running.url}/account?notice=totp-off`);
  t.equal(await prisma.userTotp.count({ where: { userId: user.id } }), 0);
  t.equal(await prisma.recoveryCode.count({ where: { userId: user.id } }), 0);
  t.same(await auditTypes(user.id), ["mfa.enabled", "mfa.recovery_codes_generated", "mfa.disabled"], "audited");
});

t.test("an old session must sign in again, code included, before changing two-step verification", async (t) => {
  const user = await makeUser(running);
  const browser = new Browser(running.url);
  let csrf = csrfToken((await openAccount(browser, user)).body);
  await ageSessions(user.id, 11 * 60);
  const setup = await browser.request("/account/totp/setup", { form: { csrf } });
  t.equal(setup.status, 303, "set-up is sent to sign in");
  t.equal(setup.location?.searchParams.get("prompt"), "login");
  t.equal(await prisma.userTotp.count({ where: { userId: user.id } }), 0, "nothing stored");

  // Sign in again and turn it on.
  const signIn = last(await browser.follow(setup.location!));
  const back = last(await browser.submit(signIn, { email: user.email, password: user.password }));
  csrf = csrfToken(back.body);
  const page = await browser.request("/account/totp/setup", { form: { csrf } });
  const secret = shownSecret(page.body);
  const step = await freshStep();
  t.equal((await browser.request("/account/totp/confirm", { form: { csrf, code: totpCode(secret, step - 1) } })).status, 200);

  await ageSessions(user.id, 11 * 60);
  for (const path of ["/account/totp/disable", "/account/recovery-codes"]) {
    const res = await browser.request(path, { form: { csrf } });
    t.equal(res.status, 303, `${path}: sent to sign in`);
    t.equal(res.location?.searchParams.get("prompt"), "login");
  }
  t.equal(await prisma.userTotp.count({ where: { userId: user.id, confirmedAt: { not: null } } }), 1, "still on");

  const again = last(await browser.follow((await browser.request("/account/totp/disable", { form: { csrf } })).location!));
  const second = last(await browser.submit(again, { email: user.email, password: user.password }));
  t.ok(isSecondFactorPage(second.body), "the new sign-in asks for the code");
  const done = last(await browser.submit(second, { code: totpCode(secret, step) }));
  t.equal(done.url.pathname, "/account");
  const off = await browser.request("/account/totp/disable", { form: { csrf: csrfToken(done.body) } });
  t.equal(off.status, 303);
  t.equal(off.location?.pathname, "/account");
  t.equal(await prisma.userTotp.count({ where: { userId: user.id } }), 0, "now turned off");
});
