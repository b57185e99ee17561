/**
 * Passkey sign-in goes through the same limits and audit as the password
 * (OWASP Authentication Cheat Sheet, "Account lockout"): an account locked by
 * failed passwords is locked for passkeys too, the refusal is a 429 with
 * Retry-After and is audited as a refusal, and no sign_in.succeeded event or
 * session is written for it.
 */
import t from "tap";
import { Browser, authorizationUrl, csrfToken, last, makeClient, makeUser, strongPassword } from "../helpers/http-flow.ts";
import { authenticationOptions, openPasskeySignIn, registerPasskey, sendAssertion, startPasskeyApp } from "../helpers/passkey-app.ts";

const running = await startPasskeyApp(t, { SIGNIN_MAX_FAILURES_PER_IP: "1000" });
const client = await makeClient(running, { name: "Passkey lock tests" });
const { prisma } = running.db;

t.test("a passkey sign-in to a locked account gets 429, an audited refusal and no success event", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);

  // Lock the account with wrong passwords on the sign-in form.
  const browser = new Browser(running.url);
  const page = last(await browser.follow((await authorizationUrl(client)).url));
  const csrf = csrfToken(page.body);
  const limit = running.config.signInMaxFailures;
  const failures = await Promise.all(
    Array.from({ length: limit }, (_, i) => browser.request(`${page.url.pathname}/login`, { form: { csrf, email: user.email, password: `wrong-${i}-${strongPassword()}` } })),
  );
  t.same(failures.map((r) => r.status), Array(limit).fill(401), `${limit} wrong passwords`);
  const locked = await browser.request(`${page.url.pathname}/login`, { form: { csrf, email: user.email, password: user.password } });
  t.equal(locked.status, 429, "the account is locked for passwords");

  const seq = (await prisma.auditEvent.aggregate({ _max: { seq: true } }))._max.seq ?? 0;
  const signIn = await openPasskeySignIn(running, client);
  const { challengeId, options } = await authenticationOptions(signIn);
  const res = await sendAssertion(signIn, { challengeId, response: authenticator.assert(options) });
  t.equal(res.status, 429, `a valid passkey for the locked account: 429 (got ${res.status} ${JSON.stringify(res.json)})`);
  t.match(res.headers.get("retry-after"), /^\d+$/, "with Retry-After");
  t.ok(Number(res.headers.get("retry-after")) > 0, "a positive number of seconds");
  t.equal(res.json.redirectTo, undefined, "no redirect to continue the flow");

  const events = await prisma.auditEvent.findMany({ where: { seq: { gt: seq } }, orderBy: { seq: "asc" } });
  t.same(events.filter((e) => e.type === "sign_in.succeeded"), [], "no sign_in.succeeded event");
  const refusals = events.filter((e) => e.type === "sign_in.failed" && e.userId === user.id);
  t.equal(refusals.length, 1, `the refusal is audited (events: ${events.map((e) => e.type).join(", ")})`);
  t.match(JSON.parse(refusals[0]?.data ?? "{}"), { method: "passkey", reason: "locked" }, "as a passkey sign-in refused because the account is locked");
  t.equal(await prisma.oidcRecord.count({ where: { model: "Session", accountId: user.id } }), 0, "no session for the user");
});

t.test("a passkey sign-in's success does not use up the account's failure budget", async (t) => {
  const user = await makeUser(running);
  const authenticator = await registerPasskey(running, user);
  for (let i = 0; i < running.config.signInMaxFailures + 2; i++) {
    const signIn = await openPasskeySignIn(running, client);
    const { challengeId, options } = await authenticationOptions(signIn);
    const res = await sendAssertion(signIn, { challengeId, response: authenticator.assert(options) });
    t.equal(res.status, 200, `passkey sign-in ${i + 1} succeeds`);
  }
});
