/**
 * Wrong second-factor codes count against the same brute-force limits as
 * passwords (OWASP Multifactor Authentication Cheat Sheet: rate-limit the
 * code entry): reserved against the account before the code is checked,
 * released on success. So the sixth wrong code in a window gets 429 with
 * Retry-After, N parallel wrong codes are never all evaluated, and wrong
 * codes add up with wrong passwords. Evaluations are counted by their
 * sign_in.failed audit events (reason wrong_code).
 */
import t from "tap";
import { Browser, authorizationUrl, errorParagraph, last, makeClient, makeUser, startApp, strongPassword, type Response, type TestUser } from "../helpers/http-flow.ts";
import { freshStep, isSecondFactorPage, turnOnTotp } from "../helpers/mfa.ts";

const limit = 5;
const attempts = 20;
const running = await startApp(t, { env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
const client = await makeClient(running, { name: "Brute force", firstParty: true });

async function secondStep(browser: Browser, user: TestUser): Promise<Response> {
  const signIn = last(await browser.follow((await authorizationUrl(client)).url));
  const page = last(await browser.submit(signIn, { email: user.email, password: user.password }));
  if (!isSecondFactorPage(page.body)) throw new Error(`expected the second step, got ${page.status}`);
  return page;
}

/** A six-digit code other than the right ones of the window. */
function wrongCode(right: string[], i: number): string {
  for (let n = i; ; n++) {
    const code = String((n * 7919 + 123457) % 1_000_000).padStart(6, "0");
    if (!right.includes(code)) return code;
  }
}

async function evaluatedWrongCodes(userId: string): Promise<number> {
  const rows = await running.db.prisma.auditEvent.findMany({ where: { userId, type: "sign_in.failed" } });
  return rows.filter((row) => (JSON.parse(row.data) as { reason?: string }).reason === "wrong_code").length;
}

t.test(`the ${limit + 1}th wrong code in a window is refused with 429, and so is the right code then`, async (t) => {
  const user = await makeUser(running);
  const totp = await turnOnTotp(running, user);
  const browser = new Browser(running.url);
  let page = await secondStep(browser, user);
  const step = await freshStep(10_000);
  const right = [totp.code(step - 1), totp.code(step), totp.code(step + 1)];
  for (let i = 0; i < limit; i++) {
    page = last(await browser.submit(page, { code: wrongCode(right, i) }));
    t.equal(page.status, 401, `wrong code ${i + 1}: 401`);
  }
  const locked = last(await browser.submit(page, { code: wrongCode(right, 99) }));
  t.equal(locked.status, 429);
  t.ok(Number(locked.headers.get("retry-after")) > 0, "Retry-After");
  t.match(errorParagraph(locked.body), /^Too many failed attempts/);
  const rightCode = last(await browser.submit(locked, { code: totp.code(step) }));
  t.equal(rightCode.status, 429, "the right code is refused too while locked");
  t.equal(await evaluatedWrongCodes(user.id), limit);
  const lockedEvents = await running.db.prisma.auditEvent.count({ where: { userId: user.id, type: "sign_in.locked" } });
  t.equal(lockedEvents, 1, "the lockout is audited");
  // The password form is locked as well: the limit is the account's.
  const other = new Browser(running.url);
  const signIn = last(await other.follow((await authorizationUrl(client)).url));
  const password = last(await other.submit(signIn, { email: user.email, password: user.password }));
  t.equal(password.status, 429, "the right password is refused too");
});

t.test(`${attempts} parallel wrong codes: at most ${limit} are evaluated, the rest get 429`, async (t) => {
  const user = await makeUser(running);
  const totp = await turnOnTotp(running, user);
  const browser = new Browser(running.url);
  const page = await secondStep(browser, user);
  const step = await freshStep(10_000);
  const right = [totp.code(step - 1), totp.code(step), totp.code(step + 1)];
  const responses = await Promise.all(Array.from({ length: attempts }, (_, i) => browser.submit(page, { code: wrongCode(right, i) }).then(last)));
  const statuses = responses.map((r) => r.status);
  const count = (s: number) => statuses.filter((x) => x === s).length;
  t.ok(count(401) <= limit, `at most ${limit} answered 401 (${count(401)})`);
  t.equal(count(401) + count(429), attempts, "the others 429");
  const evaluated = await evaluatedWrongCodes(user.id);
  t.ok(evaluated <= limit, `at most ${limit} codes were checked (${evaluated})`);
  t.equal(evaluated, count(401), "one check per 401, none per 429");
});

t.test("wrong codes and wrong passwords add up on the account's limit", async (t) => {
  const user = await makeUser(running);
  const totp = await turnOnTotp(running, user);
  const browser = new Browser(running.url);
  const signIn = last(await browser.follow((await authorizationUrl(client)).url));
  let page = signIn;
  const step = await freshStep();
  const right = [totp.code(step - 1), totp.code(step), totp.code(step + 1)];
  for (let i = 0; i < 3; i++) {
    page = last(await browser.submit(page, { email: user.email, password: strongPassword() }));
    t.equal(page.status, 401, `wrong password ${i + 1}`);
  }
  page = last(await browser.submit(page, { email: user.email, password: user.password }));
  t.ok(isSecondFactorPage(page.body), "the right password leads to the code");
  for (let i = 0; i < 2; i++) {
    page = last(await browser.submit(page, { code: wrongCode(right, 500 + i) }));
    t.equal(page.status, 401, `wrong code ${i + 1}`);
  }
  const locked = last(await browser.submit(page, { code: wrongCode(right, 600) }));
  t.equal(locked.status, 429, "three wrong passwords and two wrong codes reach the limit of five");
});
