/**
 * Attack: behind one proxy with TRUST_PROXY=true, the client sends its own
 * X-Forwarded-For ("1.2.3.4") and the proxy appends the address it saw
 * ("1.2.3.4, 5.6.7.8"). Taking the left-most entry lets the client choose
 * its address: a fresh one per request escapes every per-IP limit, and the
 * audit log records whatever it likes. The client address is the right-most
 * address not added by a trusted proxy: with `true`, exactly the immediate
 * peer is trusted (one proxy); with a list, every listed hop is skipped.
 */
import t, { type Test } from "tap";
import { Browser, authorizationUrl, csrfToken, last, makeClient, makeUser, startApp, type RunningApp } from "../helpers/http-flow.ts";

/** A failed password sign-in sent with `forwardedFor`; returns the audited address. */
async function auditedAddressOfFailedSignIn(t: Test, running: RunningApp, forwardedFor: string): Promise<string | null> {
  const client = await makeClient(running);
  const user = await makeUser(running);
  const browser = new Browser(running.url);
  const page = last(await browser.follow((await authorizationUrl(client)).url));
  const res = await browser.request(`${page.url.pathname}/login`, {
    form: { csrf: csrfToken(page.body), email: user.email, password: "not-the-password" },
    headers: { "x-forwarded-for": forwardedFor },
  });
  t.equal(res.status, 401, "the sign-in fails");
  const row = await running.db.prisma.auditEvent.findFirst({ where: { type: "sign_in.failed", userId: user.id }, orderBy: { seq: "desc" } });
  return row?.ip ?? null;
}

/** Token requests from 127.0.0.1, each with its own X-Forwarded-For; returns the statuses. */
async function tokenStatuses(running: RunningApp, forwardedFor: string[]): Promise<number[]> {
  const statuses: number[] = [];
  for (const value of forwardedFor) {
    const res = await fetch(`${running.url}/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-forwarded-for": value },
      body: "grant_type=client_credentials",
    });
    await res.text();
    statuses.push(res.status);
  }
  return statuses;
}

t.test("TRUST_PROXY=true trusts one proxy: the address it appended is the client's", async (t) => {
  const running = await startApp(t, { env: { TRUST_PROXY: "true", TOKEN_RATE_LIMIT_PER_IP: "3" } });

  t.equal(await auditedAddressOfFailedSignIn(t, running, "1.2.3.4, 5.6.7.8"), "5.6.7.8", "the audit row has the proxy's entry, not the client's own");
  t.equal(await auditedAddressOfFailedSignIn(t, running, "5.6.7.9"), "5.6.7.9", "one entry: the proxy's");

  const statuses = await tokenStatuses(running, ["10.0.0.1, 9.9.9.9", "10.0.0.2, 9.9.9.9", "10.0.0.3, 9.9.9.9", "10.0.0.4, 9.9.9.9"]);
  t.same(statuses.map((s) => s === 429), [false, false, false, true], `a forged left-most entry per request does not escape the per-IP limit (${statuses.join(",")})`);
  const other = await tokenStatuses(running, ["10.0.0.4, 9.9.9.8"]);
  t.not(other[0], 429, "another client behind the proxy has its own budget");
});

t.test("TRUST_PROXY as a list skips every listed proxy, right to left", async (t) => {
  const running = await startApp(t, { env: { TRUST_PROXY: "loopback,10.0.0.0/8" } });
  t.equal(await auditedAddressOfFailedSignIn(t, running, "1.2.3.4, 5.6.7.8, 10.1.2.3"), "5.6.7.8", "the inner proxy (10.1.2.3) is skipped, the client's own entry is not believed");
});

t.test("TRUST_PROXY=false ignores X-Forwarded-For", async (t) => {
  const running = await startApp(t);
  t.equal(await auditedAddressOfFailedSignIn(t, running, "1.2.3.4, 5.6.7.8"), "127.0.0.1");
});
