/**
 * Two-step verification over HTTP (docs/two-step-verification.md): the app
 * listening on 127.0.0.1 with SQLite, a cookie-jar browser, openid-client as
 * the relying party redeeming codes and checking the ID token, whose acr and
 * amr (RFC 8176) say what was done. Codes are computed from the secret
 * (RFC 6238), as an authenticator app does.
 */
import t, { type Test } from "tap";
import { randomBytes } from "node:crypto";
import {
  Browser,
  authorizationUrl,
  errorParagraph,
  isSignInPage,
  last,
  makeClient,
  makeUser,
  redeem,
  redirectUri,
  startApp,
  tokenRequest,
  type Response,
  type RunningApp,
  type TestClient,
  type TestUser,
} from "../helpers/http-flow.ts";
import { freshStep, isSecondFactorPage, isTotpSetupPage, shownRecoveryCodes, shownSecret, turnOnTotp } from "../helpers/mfa.ts";
import { AdminApi, makeAdminClient, signIn } from "../helpers/admin.ts";
import { totpCode, totpStep } from "../../src/auth/totp.ts";
import { mfaAcr, singleFactorAcr, totpSecretContext } from "../../src/services/mfa.ts";
import { createTestDatabase, providers } from "../helpers/databases.ts";
import { createMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { auditKeyOf } from "../../src/services/audit.ts";
import { ensureSigningKeys } from "../../src/oidc/keys.ts";
import { createUser } from "../../src/services/users.ts";
import { runCli } from "../helpers/processes.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const invalidCode = "That code is not right, or it was already used.";

const running = await startApp(t, { env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
const client = await makeClient(running, { name: "Two-step app", firstParty: true });

interface Flow {
  pending: Awaited<ReturnType<typeof authorizationUrl>>;
  page: Response;
}

/** An authorization request and the password form, in `browser`: the page that follows. */
async function passwordStep(browser: Browser, user: TestUser, params: Record<string, string> = {}, rp: TestClient = client): Promise<Flow> {
  const pending = await authorizationUrl(rp, params);
  const signInPage = last(await browser.follow(pending.url));
  if (!isSignInPage(signInPage.body)) throw new Error(`expected the sign-in page, got ${signInPage.status} ${signInPage.body.slice(0, 200)}`);
  const page = last(await browser.submit(signInPage, { email: user.email, password: user.password }));
  return { pending, page };
}

function callbackOf(page: Response): URL {
  if (!page.location?.href.startsWith(`${redirectUri}?`)) throw new Error(`the flow did not reach the redirect_uri: ${page.status} ${page.location?.href ?? ""} ${page.body.slice(0, 300)}`);
  return page.location;
}

async function idTokenClaims(flow: Flow, page: Response, rp: TestClient = client) {
  const tokens = await redeem(rp, callbackOf(page), flow.pending);
  return tokens.claims()!;
}

const auditTypes = async (userId: string) => (await running.db.prisma.auditEvent.findMany({ where: { userId }, orderBy: { seq: "asc" } })).map((e) => e.type);

t.test("discovery advertises the acr values", async (t) => {
  const discovery = (await (await fetch(`${running.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  t.same(discovery.acr_values_supported, [singleFactorAcr, mfaAcr]);
});

t.test("a user without an authenticator app signs in with the password alone: acr single-factor, amr pwd", async (t) => {
  const user = await makeUser(running);
  const flow = await passwordStep(new Browser(running.url), user);
  const claims = await idTokenClaims(flow, flow.page);
  t.equal(claims.acr, singleFactorAcr);
  t.same(claims.amr, ["pwd"]);
});

t.test("with an authenticator app: the password, then the authentication code; the ID token says mfa", async (t) => {
  const user = await makeUser(running);
  const totp = await turnOnTotp(running, user);
  const browser = new Browser(running.url);
  const flow = await passwordStep(browser, user);
  t.equal(flow.page.status, 200);
  t.ok(isSecondFactorPage(flow.page.body), "the second step");
  t.match(flow.page.body, /<label for="code">Authentication code<\/label>/);
  t.match(flow.page.body, /<button type="submit">Verify<\/button>/);
  t.match(flow.page.body, />Use a recovery code<\/a>/);
  t.notMatch(flow.page.body, /totp-secret/, "nothing of the secret");

  // Neither code of the window around now (one step either side is accepted).
  const window = [-1, 0, 1].map((d) => totp.code(totpStep() + d));
  const wrong = last(await browser.submit(flow.page, { code: ["000000", "111111", "222222", "333333"].find((c) => !window.includes(c))! }));
  t.equal(wrong.status, 401);
  t.equal(errorParagraph(wrong.body), invalidCode);

  const step = await freshStep();
  const done = last(await browser.submit(wrong, { code: totp.code(step) }));
  const claims = await idTokenClaims(flow, done);
  t.equal(claims.acr, mfaAcr);
  t.same(claims.amr, ["pwd", "otp", "mfa"]);
  const steps = await running.db.prisma.auditEvent.findMany({ where: { userId: user.id, type: { in: ["sign_in.first_factor", "sign_in.succeeded"] } }, orderBy: { seq: "asc" } });
  t.same(
    steps.map((e) => [e.type, (JSON.parse(e.data) as { method: string }).method]),
    [
      ["sign_in.first_factor", "password"],
      ["sign_in.succeeded", "totp"],
    ],
    "both steps audited; only the second is a sign-in",
  );

  await t.test("a code is accepted once: the same code in a new sign-in is refused", async (t) => {
    const browser2 = new Browser(running.url);
    const flow2 = await passwordStep(browser2, user);
    const refused = last(await browser2.submit(flow2.page, { code: totp.code(step) }));
    t.equal(refused.status, 401, "replayed code refused");
    t.equal(errorParagraph(refused.body), invalidCode);
    const failed = await running.db.prisma.auditEvent.findMany({ where: { userId: user.id, type: "sign_in.failed" } });
    t.ok(failed.some((e) => (JSON.parse(e.data) as { reason: string }).reason === "replayed"), "audited as a replay");
    // An earlier code is refused after a later one too (the step only moves forward).
    const older = last(await browser2.submit(refused, { code: totp.code(step - 1) }));
    t.equal(older.status, 401, "the previous step's code, older than the last used one, is refused");
  });
});

for (const provider of providers(t)) {
  t.test(`parallel submissions of one code, or of one recovery code: exactly one signs in (compare-and-set), ${provider}`, async (t) => {
    const app = provider === "sqlite" ? running : await startApp(t, { provider, env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
    const rp = provider === "sqlite" ? client : await makeClient(app, { name: "Two-step app", firstParty: true });
    const user = await makeUser(app);
    const totp = await turnOnTotp(app, user);
    const browsers = () => Array.from({ length: 4 }, () => new Browser(app.url));

    const forCode = browsers();
    const flows = await Promise.all(forCode.map((b) => passwordStep(b, user, {}, rp)));
    const step = await freshStep();
    const results = await Promise.all(forCode.map((b, i) => b.submit(flows[i]!.page, { code: totp.code(step) }).then(last)));
    t.equal(results.filter((r) => r.location?.href.startsWith(`${redirectUri}?`)).length, 1, `one success with the code (statuses ${results.map((r) => r.status).join(",")})`);
    t.equal(results.filter((r) => r.status === 401).length, forCode.length - 1, "the others are refused");
    t.equal((await app.db.prisma.userTotp.findUniqueOrThrow({ where: { userId: user.id } })).lastUsedStep, step, "the step is recorded as used");

    // Another user: the three refused codes count against the first one's limit,
    // and four more sign-ins at once would be reserved past it.
    const other = await makeUser(app);
    const otherTotp = await turnOnTotp(app, other);
    const forRecovery = browsers();
    const recoveryFlows = await Promise.all(forRecovery.map((b) => passwordStep(b, other, {}, rp)));
    const code = otherTotp.recoveryCodes[0]!;
    const recovered = await Promise.all(
      forRecovery.map(async (b, i) => last(await b.submit(await b.request(`${recoveryFlows[i]!.page.url.pathname}?recovery=1`), { recovery_code: code }))),
    );
    t.equal(recovered.filter((r) => r.location?.href.startsWith(`${redirectUri}?`)).length, 1, `one success with the recovery code (statuses ${recovered.map((r) => r.status).join(",")})`);
    t.equal(recovered.filter((r) => r.status === 401).length, forRecovery.length - 1, "the others are refused");
  });
}

t.test("a recovery code signs in once", async (t) => {
  const user = await makeUser(running);
  const totp = await turnOnTotp(running, user);
  t.equal(totp.recoveryCodes.length, 10, "ten recovery codes");
  t.equal(new Set(totp.recoveryCodes).size, 10);
  const stored = await running.db.prisma.recoveryCode.findMany({ where: { userId: user.id } });
  t.equal(stored.length, 10);
  t.notOk(stored.some((row) => totp.recoveryCodes.some((code) => row.codeHash.includes(code) || row.codeHash.includes(code.replace(/-/g, "")))), "stored hashed, not in clear");

  const browser = new Browser(running.url);
  const flow = await passwordStep(browser, user);
  const recoveryPage = await browser.request(`${flow.page.url.pathname}?recovery=1`);
  t.match(recoveryPage.body, /<label for="recovery_code">Recovery code<\/label>/);
  const code = totp.recoveryCodes[3]!;
  // Typed in capitals with spaces: case, spaces and dashes do not matter.
  const done = last(await browser.submit(recoveryPage, { recovery_code: ` ${code.toUpperCase().replace(/-/g, " ")} ` }));
  const claims = await idTokenClaims(flow, done);
  t.equal(claims.acr, mfaAcr);
  t.same(claims.amr, ["pwd", "otp", "mfa"]);
  t.ok((await auditTypes(user.id)).includes("mfa.recovery_code_used"));

  const browser2 = new Browser(running.url);
  const flow2 = await passwordStep(browser2, user);
  const page2 = await browser2.request(`${flow2.page.url.pathname}?recovery=1`);
  const again = last(await browser2.submit(page2, { recovery_code: code }));
  t.equal(again.status, 401, "the used code is refused");
  t.equal(errorParagraph(again.body), invalidCode);
  t.equal(await running.db.prisma.recoveryCode.count({ where: { userId: user.id, usedAt: null } }), 9);
});

t.test("acr_values=urn:gatehouse:mfa from a user without an authenticator app leads to its set-up", async (t) => {
  const user = await makeUser(running);
  const browser = new Browser(running.url);
  const flow = await passwordStep(browser, user, { acr_values: mfaAcr });
  t.ok(isTotpSetupPage(flow.page.body), "the set-up page");
  t.match(flow.page.body, /<svg[^>]*>/, "an inline SVG QR code");
  t.match(flow.page.body, /<button type="submit">Turn on<\/button>/);
  const secret = shownSecret(flow.page.body);
  const wrong = last(await browser.submit(flow.page, { code: "12345" }));
  t.equal(wrong.status, 400);
  t.equal(shownSecret(wrong.body), secret, "the same key is shown again");
  const step = await freshStep();
  const codesPage = last(await browser.submit(wrong, { code: totpCode(secret, step) }));
  const codes = shownRecoveryCodes(codesPage.body);
  t.equal(codes.length, 10, "ten recovery codes shown");
  const reload = await browser.request(flow.page.url);
  t.equal(reload.status, 200);
  t.equal(shownRecoveryCodes(reload.body).length, 0, "a reload does not show the codes again");
  const done = last(await browser.submit(reload, {}));
  const claims = await idTokenClaims(flow, done);
  t.equal(claims.acr, mfaAcr);
  t.same(claims.amr, ["pwd", "otp", "mfa"]);
  t.ok((await auditTypes(user.id)).includes("mfa.enabled"));

  await t.test("the session now satisfies acr_values without asking again", async (t) => {
    const pending = await authorizationUrl(client, { acr_values: mfaAcr });
    const page = last(await browser.follow(pending.url));
    const claims = (await redeem(client, callbackOf(page), pending)).claims()!;
    t.equal(claims.acr, mfaAcr);
  });

  await t.test("prompt=login and max_age=0 sign in afresh, the code included", async (t) => {
    for (const params of [{ prompt: "login" }, { max_age: "0" }] as Record<string, string>[]) {
      const pending = await authorizationUrl(client, params);
      const page = last(await browser.follow(pending.url));
      t.ok(isSignInPage(page.body), `${JSON.stringify(params)}: the password form again`);
      const second = last(await browser.submit(page, { email: user.email, password: user.password }));
      t.ok(isSecondFactorPage(second.body), `${JSON.stringify(params)}: then the code`);
      const s = await freshStep();
      // Each sign-in needs a later step than the last one used: the next step's code (within the window).
      const used = await running.db.prisma.userTotp.findUniqueOrThrow({ where: { userId: user.id } });
      const next = Math.max(s, used.lastUsedStep! + 1);
      if (next > s + 1) {
        t.comment("waiting for the next time step");
        await new Promise((resolve) => setTimeout(resolve, (next - 1) * 30_000 - Date.now() + 100));
      }
      const done = last(await browser.submit(second, { code: totpCode(secret, next) }));
      const claims = (await redeem(client, callbackOf(done), pending)).claims()!;
      t.equal(claims.acr, mfaAcr);
      t.ok(claims.auth_time! >= Math.floor(Date.now() / 1000) - 5, "auth_time is now");
    }
  });
});

t.test("step-up: a password-only session asked for acr_values=urn:gatehouse:mfa is asked only for the code", async (t) => {
  const user = await makeUser(running);
  const browser = new Browser(running.url);
  const first = await passwordStep(browser, user);
  const firstClaims = await idTokenClaims(first, first.page);
  t.equal(firstClaims.acr, singleFactorAcr);
  const totp = await turnOnTotp(running, user);
  const pending = await authorizationUrl(client, { acr_values: mfaAcr });
  const page = last(await browser.follow(pending.url));
  t.ok(isSecondFactorPage(page.body), "the code, not the password");
  const done = last(await browser.submit(page, { code: totp.code(await freshStep()) }));
  const claims = (await redeem(client, callbackOf(done), pending)).claims()!;
  t.equal(claims.acr, mfaAcr);
  t.same(claims.amr, ["pwd", "otp", "mfa"]);
  t.equal(claims.auth_time, firstClaims.auth_time, "auth_time stays the time of the password sign-in");
});

t.test("MFA=required: a user without a second factor sets one up before the sign-in completes", async (t) => {
  const required = await startApp(t, { env: { MFA: "required" } });
  const rp = await makeClient(required, { name: "Required", firstParty: true });
  const user = await makeUser(required);
  const browser = new Browser(required.url);
  const flow = await passwordStep(browser, user, {}, rp);
  t.ok(isTotpSetupPage(flow.page.body), "set-up first");
  // Leaving the set-up unfinished does not sign in: the authorization still asks.
  const elsewhere = last(await browser.follow((await authorizationUrl(rp)).url));
  t.ok(isSignInPage(elsewhere.body), "no session was made");
  const retry = await passwordStep(browser, user, {}, rp);
  const secret = shownSecret(retry.page.body);
  const codesPage = last(await browser.submit(retry.page, { code: totpCode(secret, await freshStep()) }));
  const done = last(await browser.submit(codesPage, {}));
  const claims = (await redeem(rp, callbackOf(done), retry.pending)).claims()!;
  t.equal(claims.acr, mfaAcr);
  t.same(claims.amr, ["pwd", "otp", "mfa"]);
});

t.test("DELETE /admin/v1/users/{id}/mfa: admin:write only; removes the app and codes, revokes sessions and grants", async (t) => {
  const signedIn = await signIn(running, { user: await makeUser(running) });
  const user = signedIn.user;
  await turnOnTotp(running, user);
  const path = `/admin/v1/users/${user.id}/mfa`;
  t.equal((await new AdminApi(running, "").delete(path)).status, 401, "no token: 401");
  for (const scope of ["admin:read", "admin:revoke"]) {
    const api = new AdminApi(running, (await makeAdminClient(running, scope)).token);
    t.equal((await api.delete(path)).status, 403, `${scope}: 403`);
  }
  t.equal(await running.db.prisma.userTotp.count({ where: { userId: user.id } }), 1, "nothing removed by the refused calls");
  const writer = new AdminApi(running, (await makeAdminClient(running, "admin:write")).token);
  t.equal((await writer.delete(`/admin/v1/users/nobody/mfa`)).status, 404);
  const res = await writer.delete(path);
  t.equal(res.status, 204);
  t.equal(await running.db.prisma.userTotp.count({ where: { userId: user.id } }), 0);
  t.equal(await running.db.prisma.recoveryCode.count({ where: { userId: user.id } }), 0);
  const refresh = await tokenRequest(running, signedIn.client, { grant_type: "refresh_token", refresh_token: signedIn.refreshToken! });
  t.equal(refresh.status, 400, "the refresh token is refused");
  t.equal(refresh.json.error, "invalid_grant");
  const types = await auditTypes(user.id);
  t.equal(types.filter((type) => type === "mfa.reset").length, 1, "the reset is audited, once");
  t.notOk(types.slice(types.indexOf("mfa.reset")).includes("mfa.disabled"), "as one event");
  const openapi = (await (await fetch(`${running.url}/admin/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  t.ok(openapi.paths["/admin/v1/users/{id}/mfa"]?.delete, "in the OpenAPI document");
  // Signing in again needs the password only.
  const flow = await passwordStep(new Browser(running.url), user);
  t.equal((await idTokenClaims(flow, flow.page)).acr, singleFactorAcr);
});

t.test("gatehouse users reset-mfa, and keys reseal re-encrypts the TOTP secret bound to its row", async (t) => {
  const keysDir = mkdtempSync(join(tmpdir(), "gatehouse-keys-"));
  t.teardown(() => rmSync(keysDir, { recursive: true, force: true }));
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const oldRing = createMasterKeyRing([oldKey]);
  const newRing = createMasterKeyRing([newKey, oldKey]);
  const database = await createTestDatabase(t, "sqlite");
  const db = await database.open({ auditKey: auditKeyOf(oldRing) });
  await ensureSigningKeys(db, oldRing);
  const fixture = { db, ring: oldRing, config: { issuer: "http://127.0.0.1:1" } };
  const password = "correct horse battery staple";
  const [a, b] = await Promise.all(["a", "b"].map((n) => createUser(db, running.config.argon2, { email: `${n}.${process.pid}@example.test`, password })));
  const totpA = await turnOnTotp(fixture, a!);
  await turnOnTotp(fixture, b!);

  const rowA = await db.prisma.userTotp.findUniqueOrThrow({ where: { userId: a!.id } });
  t.notMatch(rowA.secretSealed, totpA.secret, "the secret is not stored in clear");
  t.equal(await oldRing.decrypt(rowA.secretSealed, totpSecretContext(a!.id)), totpA.secret);
  await t.rejects(oldRing.decrypt(rowA.secretSealed, totpSecretContext(b!.id)), /found in UserTotp/, "a sealed secret copied to another row does not open");

  const env = { DATABASE_URL: database.url, KEYS_DIR: keysDir };
  const b64 = (k: Buffer) => k.toString("base64");
  const resealed = await runCli(["keys", "reseal"], { ...env, MASTER_KEYS: [newKey, oldKey].map(b64).join(",") });
  t.equal(resealed.code, 0, resealed.stderr);
  t.match(JSON.parse(resealed.stdout), { by_column: { "UserTotp.secretSealed": 2 } });
  const onlyNew = createMasterKeyRing([newKey]);
  const resealedA = await db.prisma.userTotp.findUniqueOrThrow({ where: { userId: a!.id } });
  t.equal(await onlyNew.decrypt(resealedA.secretSealed, totpSecretContext(a!.id)), totpA.secret, "opens with the new master key alone");

  const reset = await runCli(["users", "reset-mfa", "--email", a!.email], { ...env, MASTER_KEYS: b64(newKey) });
  t.equal(reset.code, 0, reset.stderr);
  t.match(JSON.parse(reset.stdout), { id: a!.id, email: a!.email, revoked: { grants: 0, sessions: 0 } });
  t.equal(await db.prisma.userTotp.count({ where: { userId: a!.id } }), 0);
  t.equal(await db.prisma.recoveryCode.count({ where: { userId: a!.id } }), 0);
  t.equal(await db.prisma.userTotp.count({ where: { userId: b!.id } }), 1, "the other user keeps theirs");
  const events = await db.prisma.auditEvent.findMany({ where: { userId: a!.id, type: "mfa.reset" } });
  t.equal(events.length, 1);
  t.equal(events[0]!.actorType, "operator");
  const unknown = await runCli(["users", "reset-mfa", "--email", "nobody@example.test"], { ...env, MASTER_KEYS: b64(newKey) });
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no user with email/);
});

t.test("bad input on the second step is a 400 before anything is checked or counted", async (t) => {
  const user = await makeUser(running);
  await turnOnTotp(running, user);
  const browser = new Browser(running.url);
  const flow = await passwordStep(browser, user);
  const action = `${flow.page.url.pathname}/second-factor`;
  const csrf = /name="csrf" value="([^"]+)"/.exec(flow.page.body)![1]!;
  async function fetchForm(body: string) {
    return fetch(new URL(action, running.url), { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", cookie: browser.jar.header(new URL(action, running.url)) }, body, redirect: "manual" });
  }
  const failedBefore = await running.db.prisma.auditEvent.count({ where: { userId: user.id, type: "sign_in.failed" } });
  for (const [what, body] of [
    ["a repeated code (an array)", `csrf=${encodeURIComponent(csrf)}&code=123456&code=654321`],
    ["an oversized code", `csrf=${encodeURIComponent(csrf)}&code=${"1".repeat(21)}`],
    ["an oversized recovery code", `csrf=${encodeURIComponent(csrf)}&recovery_code=${"a".repeat(65)}`],
    ["an unknown field", `csrf=${encodeURIComponent(csrf)}&code=123456&password=x`],
  ] as const) {
    t.equal((await fetchForm(body)).status, 400, `${what}: 400`);
  }
  t.equal((await fetchForm("code=123456")).status, 403, "no CSRF token: 403");
  t.equal(await running.db.prisma.auditEvent.count({ where: { userId: user.id, type: "sign_in.failed" } }), failedBefore, "nothing was checked or counted");
});
