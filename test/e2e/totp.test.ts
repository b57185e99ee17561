/**
 * Two-step verification end to end: the real server (as `npm start` runs
 * it) with a temporary SQLite database, headless Chromium driving the pages
 * by their accessible names (README), openid-client as the relying party
 * checking the ID token's acr and amr (RFC 8176). The test reads the key the
 * set-up page shows and computes codes from it (RFC 6238), as an
 * authenticator app does. Passkeys through Chromium's virtual authenticator,
 * as in passkeys.test.ts; the issuer is http://localhost:<port> for WebAuthn.
 */
import t, { type Test } from "tap";
import { randomBytes } from "node:crypto";
import * as oidc from "openid-client";
import type { BrowserContext, Page } from "playwright-core";
import { launchBrowser, newContext, requireBrowser } from "../helpers/browser.ts";
import { processDatabase } from "../helpers/databases.ts";
import { runCli, startServer } from "../helpers/processes.ts";
import { beginAuthorization, completeAuthorization, discoverClient, startRelyingParty, type PendingAuthorization } from "../helpers/rp.ts";
import { freshStep } from "../helpers/mfa.ts";
import { totpCode } from "../../src/auth/totp.ts";

const mfaAcr = "urn:gatehouse:mfa";
const invalidCode = "That code is not right, or it was already used.";

if (requireBrowser(t)) {
  const { database, env } = await processDatabase(t);
  const server = await startServer(t, { ...env, ISSUER: "" });
  const issuer = server.url.replace("//127.0.0.1:", "//localhost:");
  const db = await database.open();
  const browser = await launchBrowser(t);
  const rp = await startRelyingParty(t);

  interface TestUser {
    id: string;
    email: string;
    password: string;
  }

  const createUser = async (t: Test, name: string): Promise<TestUser> => {
    const email = `${name.toLowerCase().replace(/\W+/g, ".")}.${randomBytes(4).toString("hex")}@example.test`;
    const password = `amber-kestrel-${randomBytes(9).toString("base64url")}`;
    const res = await runCli(["users", "create", "--email", email, "--name", name, "--password-stdin"], env, `${password}\n`);
    t.equal(res.code, 0, `users create exits 0 ${res.stderr}`);
    return { id: (JSON.parse(res.stdout) as { id: string }).id, email, password };
  };

  const createClient = async (t: Test, name: string) => {
    const res = await runCli(
      ["clients", "create", "--name", name, "--redirect-uri", rp.callbackUrl, "--post-logout-redirect-uri", rp.postLogoutUrl, "--scope", "openid profile email"],
      env,
    );
    t.equal(res.code, 0, `clients create exits 0 ${res.stderr}`);
    const { client_id, client_secret } = JSON.parse(res.stdout) as { client_id: string; client_secret: string };
    return { clientId: client_id, config: await discoverClient(issuer, client_id, client_secret) };
  };
  type Client = Awaited<ReturnType<typeof createClient>>;

  const isCallback = (url: URL) => url.href.startsWith(`${rp.callbackUrl}?`);
  const button = (page: Page, name: string) => page.getByRole("button", { name, exact: true });

  const signInWithPassword = async (page: Page, url: string, user: TestUser) => {
    await page.goto(url);
    await page.getByLabel("Email").fill(user.email);
    await page.getByLabel("Password").fill(user.password);
    await button(page, "Sign in").click();
  };

  /** After the last sign-in step: Allow on the consent page if shown; the tokens. */
  const finish = async (t: Test, page: Page, client: Client, pending: PendingAuthorization) => {
    const allow = button(page, "Allow");
    await Promise.race([allow.waitFor(), page.waitForURL(isCallback)]);
    if (!isCallback(new URL(page.url()))) await allow.click();
    await page.waitForURL(isCallback);
    const callback = new URL(page.url());
    t.equal(callback.searchParams.get("error"), null, `no error in the callback (${callback.searchParams.get("error_description")})`);
    return completeAuthorization(client.config, callback, pending);
  };

  const signOut = async (t: Test, page: Page, client: Client, idToken: string) => {
    await page.goto(oidc.buildEndSessionUrl(client.config, { id_token_hint: idToken, post_logout_redirect_uri: rp.postLogoutUrl }).href);
    await button(page, "Sign out").click();
    await page.waitForURL((url) => url.href.startsWith(rp.postLogoutUrl));
    t.pass("signed out");
  };

  /**
   * On /account (signed in recently): Set up authenticator app, read the key,
   * turn it on with the previous step's code; returns the key and the ten
   * recovery codes shown.
   */
  const setUpOnAccount = async (t: Test, page: Page): Promise<{ secret: string; recoveryCodes: string[]; step: number }> => {
    await page.goto(`${issuer}/account`);
    await button(page, "Set up authenticator app").click();
    await page.getByRole("heading", { name: "Set up authenticator app" }).waitFor();
    t.ok(await page.locator(".qr svg").isVisible(), "a QR code, drawn as inline SVG");
    t.equal(await page.getByRole("img", { name: /QR code/ }).count(), 1, "with an accessible name");
    const secret = (await page.locator("#totp-secret").innerText()).trim();
    t.match(secret, /^[A-Z2-7]{32}$/, "the key in text (base32, 160 bits)");
    const step = await freshStep(12_000);
    await page.getByLabel("Authentication code").fill(totpCode(secret, step - 1));
    await button(page, "Turn on").click();
    await page.getByRole("heading", { name: "Recovery codes" }).waitFor();
    const recoveryCodes = (await page.locator("#recovery-codes li").allInnerTexts()).map((s) => s.trim());
    t.equal(recoveryCodes.length, 10, "ten recovery codes, shown once");
    await page.goto(`${issuer}/account`);
    t.ok(await button(page, "Turn off authenticator app").isVisible(), "Turn off authenticator app is offered");
    t.ok(await button(page, "Generate new recovery codes").isVisible(), "Generate new recovery codes is offered");
    return { secret, recoveryCodes, step };
  };

  const alertText = async (page: Page) => (await page.getByRole("alert").first().innerText()).trim();

  t.test("set up on /account, then password and code; a replayed code is refused; a recovery code works once", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Grace Totp"), createClient(t, "Totp Notebook")]);
    const context: BrowserContext = await newContext(t, browser);
    const page = await context.newPage();

    const first = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    await signInWithPassword(page, first.url.href, user);
    let tokens = await finish(t, page, client, first);
    t.same(tokens.claims()!.amr, ["pwd"], "before: the password alone");
    t.equal(tokens.claims()!.acr, "urn:gatehouse:sfa");

    const { secret, recoveryCodes, step } = await setUpOnAccount(t, page);
    await signOut(t, page, client, tokens.id_token!);

    // Password, then the code.
    const second = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    await signInWithPassword(page, second.url.href, user);
    await page.getByLabel("Authentication code").fill(totpCode(secret, step));
    await button(page, "Verify").click();
    tokens = await finish(t, page, client, second);
    t.equal(tokens.claims()!.sub, user.id);
    t.same(tokens.claims()!.amr, ["pwd", "otp", "mfa"], "amr: password, one-time password, multiple factors");
    t.equal(tokens.claims()!.acr, mfaAcr);
    await signOut(t, page, client, tokens.id_token!);

    // The same code again: refused.
    const third = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    await signInWithPassword(page, third.url.href, user);
    await page.getByLabel("Authentication code").fill(totpCode(secret, step));
    await button(page, "Verify").click();
    await page.getByRole("alert").waitFor();
    t.equal(await alertText(page), invalidCode, "the replayed code is refused");

    // A recovery code instead.
    await page.getByRole("link", { name: "Use a recovery code" }).click();
    await page.getByLabel("Recovery code").fill(recoveryCodes[0]!);
    await button(page, "Verify").click();
    tokens = await finish(t, page, client, third);
    t.same(tokens.claims()!.amr, ["pwd", "otp", "mfa"]);
    t.equal(tokens.claims()!.acr, mfaAcr);
    await signOut(t, page, client, tokens.id_token!);

    // The same recovery code again: refused.
    const fourth = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    await signInWithPassword(page, fourth.url.href, user);
    await page.getByRole("link", { name: "Use a recovery code" }).click();
    await page.getByLabel("Recovery code").fill(recoveryCodes[0]!);
    await button(page, "Verify").click();
    await page.getByRole("alert").waitFor();
    t.equal(await alertText(page), invalidCode, "a used recovery code is refused");

    const types = (await db.prisma.auditEvent.findMany({ where: { userId: user.id }, orderBy: { seq: "asc" } })).map((e) => e.type);
    t.ok(types.includes("mfa.enabled") && types.includes("mfa.recovery_code_used"), "set-up and recovery code use are audited");
  });

  t.test("acr_values=urn:gatehouse:mfa from a user without an authenticator app leads to its set-up", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Alan Setup"), createClient(t, "Mfa Asker")]);
    const context = await newContext(t, browser);
    const page = await context.newPage();
    const pending = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email", acr_values: mfaAcr });
    await signInWithPassword(page, pending.url.href, user);
    await page.getByRole("heading", { name: "Set up authenticator app" }).waitFor();
    const secret = (await page.locator("#totp-secret").innerText()).trim();
    await page.getByLabel("Authentication code").fill(totpCode(secret, await freshStep(8_000)));
    await button(page, "Turn on").click();
    t.equal(await page.locator("#recovery-codes li").count(), 10, "ten recovery codes");
    await button(page, "Continue").click();
    const tokens = await finish(t, page, client, pending);
    t.equal(tokens.claims()!.acr, mfaAcr, "acr says two factors");
    t.same(tokens.claims()!.amr, ["pwd", "otp", "mfa"]);
  });

  t.test("a passkey sign-in with user verification is not asked for a code", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Edsger Passkey"), createClient(t, "Passkey And Totp")]);
    const context = await newContext(t, browser);
    await context.addInitScript({ content: "if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);" });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });

    const first = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    await signInWithPassword(page, first.url.href, user);
    const firstTokens = await finish(t, page, client, first);
    await setUpOnAccount(t, page);
    await page.goto(`${issuer}/account`);
    await button(page, "Add a passkey").click();
    await page.getByRole("button", { name: /^Remove\b/ }).first().waitFor();
    await signOut(t, page, client, firstTokens.id_token!);

    const second = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    await page.goto(second.url.href);
    await button(page, "Sign in with a passkey").click();
    const tokens = await finish(t, page, client, second);
    t.equal(tokens.claims()!.sub, user.id);
    t.same(tokens.claims()!.amr, ["hwk", "mfa"], "amr: a device-bound key with user verification");
    t.equal(tokens.claims()!.acr, mfaAcr, "counts as two factors");
    const totpSteps = await db.prisma.auditEvent.count({ where: { userId: user.id, type: "sign_in.succeeded", data: { contains: '"totp"' } } });
    t.equal(totpSteps, 0, "no code was asked for");
  });
}
