/**
 * Passkeys and two-step verification over HTTP, with the soft authenticator
 * (a real WebAuthn assertion): a passkey with user verification counts as two
 * factors (amr hwk + mfa, no code asked); a passkey with user presence only
 * is one factor, so a user with an authenticator app is asked for the code
 * after it (amr hwk + otp + mfa).
 */
import t, { type Test } from "tap";
import { Browser, authorizationUrl, last, makeClient, makeUser, redeem, redirectUri } from "../helpers/http-flow.ts";
import { postJson, registerPasskey, startPasskeyApp } from "../helpers/passkey-app.ts";
import { flags } from "../helpers/soft-authenticator.ts";
import { freshStep, isSecondFactorPage, turnOnTotp } from "../helpers/mfa.ts";
import { mfaAcr } from "../../src/services/mfa.ts";

const running = await startPasskeyApp(t);
const client = await makeClient(running, { name: "Passkey and code", firstParty: true });
const user = await makeUser(running);
const authenticator = await registerPasskey(running, user);
const totp = await turnOnTotp(running, user);

/** A new authorization request up to the passkey assertion, signed with `assertionFlags`; the answer and the pending request. */
async function passkeySignIn(t: Test, assertionFlags: number) {
  const browser = new Browser(running.url);
  const pending = await authorizationUrl(client);
  const page = last(await browser.follow(pending.url));
  const uid = /^\/interaction\/([^/]+)$/.exec(page.url.pathname)![1]!;
  const csrf = /data-csrf="([^"]+)"/.exec(page.body)![1]!;
  const options = await postJson(browser, `/interaction/${uid}/passkey/options`, {}, { "x-csrf-token": csrf });
  const { challengeId, options: request } = options.json as { challengeId: string; options: { challenge: string; rpId?: string } };
  const res = await postJson(browser, `/interaction/${uid}/passkey`, { challengeId, response: authenticator.assert(request, { flags: assertionFlags }) }, { "x-csrf-token": csrf });
  t.equal(res.status, 200, "the assertion is accepted");
  return { browser, pending, redirectTo: (res.json as { redirectTo: string }).redirectTo };
}

t.test("a passkey with user verification signs in without a code: amr hwk and mfa", async (t) => {
  const { browser, pending, redirectTo } = await passkeySignIn(t, flags.userPresent | flags.userVerified);
  t.notMatch(redirectTo, /^\/interaction\//, "not sent to a second step");
  const end = last(await browser.follow(redirectTo));
  t.ok(end.location?.href.startsWith(`${redirectUri}?`), "straight to the client");
  const claims = (await redeem(client, end.location!, pending)).claims()!;
  t.same(claims.amr, ["hwk", "mfa"]);
  t.equal(claims.acr, mfaAcr);
});

t.test("a passkey without user verification is one factor: the code follows", async (t) => {
  const { browser, pending, redirectTo } = await passkeySignIn(t, flags.userPresent);
  t.match(redirectTo, /^\/interaction\/[^/]+$/, "sent to the second step");
  const page = last(await browser.follow(redirectTo));
  t.ok(isSecondFactorPage(page.body), "the code page");
  const end = last(await browser.submit(page, { code: totp.code(await freshStep()) }));
  t.ok(end.location?.href.startsWith(`${redirectUri}?`), "then the client");
  const claims = (await redeem(client, end.location!, pending)).claims()!;
  t.same(claims.amr, ["hwk", "otp", "mfa"]);
  t.equal(claims.acr, mfaAcr);
});
