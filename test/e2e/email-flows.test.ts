/**
 * The email flows end to end (docs/account-lifecycle.md): the real server
 * (as `npm start` runs it, REGISTRATION=open) with a temporary SQLite
 * database, headless Chromium driving the pages by their accessible names
 * (README), and the links read from the email each flow sends, delivered by
 * the server's outbox worker to a real SMTP server in the test. With a
 * virtual WebAuthn authenticator (Chromium's DevTools protocol), an invited
 * user accepts the invitation with a passkey. The issuer is
 * http://localhost:<port>, a secure context whose host can be a WebAuthn RP ID.
 */
import t, { type Test } from "tap";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { BrowserContext, Page } from "playwright-core";
import { launchBrowser, newContext, requireBrowser } from "../helpers/browser.ts";
import { processDatabase } from "../helpers/databases.ts";
import { runCli, startServer } from "../helpers/processes.ts";
import { linkIn } from "../helpers/outbox.ts";
import { startSmtpServer } from "../helpers/smtp.ts";

if (requireBrowser(t)) {
  const { database, env: dbEnv } = await processDatabase(t);
  const outboxDir = mkdtempSync(join(tmpdir(), "gatehouse-outbox-"));
  t.teardown(() => rmSync(outboxDir, { recursive: true, force: true }));
  const smtp = await startSmtpServer(t);
  const env = { ...dbEnv, EMAIL_OUTBOX_DIR: outboxDir, REGISTRATION: "open", SMTP_URL: smtp.url };
  // An empty ISSUER leaves the server to its default, http://localhost:<PORT>.
  const server = await startServer(t, { ...env, ISSUER: "" });
  const issuer = server.url.replace("//127.0.0.1:", "//localhost:");
  const db = await database.open();
  const browser = await launchBrowser(t);

  /** The link to `page` (a path prefix) in the email that arrived for `to`, as the person would click it. */
  const linkFromEmail = async (to: string, page: string) => {
    const hasLink = (text: string | undefined) => (text ?? "").includes(`${issuer}${page}`);
    const mail = await smtp.waitFor((m) => m.to.includes(to) && hasLink(m.parsed.text), 20_000);
    return linkIn(mail.parsed.text!, issuer).href;
  };

  const button = (page: Page, name: string) => page.getByRole("button", { name, exact: true });
  const uniqueEmail = (name: string) => `${name}.${randomBytes(4).toString("hex")}@example.test`;
  const newPassword = () => `amber-kestrel-${randomBytes(9).toString("base64url")}`;

  const expectAccount = async (t: Test, page: Page, email: string) => {
    await page.waitForURL((url) => url.href === `${issuer}/account` || url.pathname === "/account");
    await page.getByText("Signed in as").waitFor();
    t.match(await page.locator("main").innerText(), email, `signed in as ${email} on /account`);
  };

  const signOut = async (t: Test, page: Page) => {
    await page.goto(`${issuer}/session/end`);
    await button(page, "Sign out").click();
    await page.getByText("You are signed out").waitFor();
    await page.goto(`${issuer}/account`);
    await button(page, "Sign in").waitFor();
    t.pass("signed out: /account asks to sign in");
  };

  const signInWithPassword = async (page: Page, email: string, password: string) => {
    await page.goto(`${issuer}/account`);
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await button(page, "Sign in").click();
  };

  t.test("register, verify, sign out, forget the password, reset it, sign in with the new one", async (t) => {
    const context = await newContext(t, browser);
    const page = await context.newPage();
    const email = uniqueEmail("grace");
    const password = newPassword();

    // Sign-up from the sign-in page's link.
    await page.goto(`${issuer}/account`);
    await page.getByRole("link", { name: "Create an account" }).click();
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Name").fill("Grace");
    await page.getByLabel("Password").fill(password);
    await button(page, "Create account").click();
    await page.getByText("We sent a link to that email.").waitFor();

    // The verification link.
    await page.goto(await linkFromEmail(email, "/email/verify/"));
    await page.getByText("Your email is verified.").waitFor();
    t.pass("the verification link verifies the email");

    await signInWithPassword(page, email, password);
    await expectAccount(t, page, email);
    t.equal(await button(page, "Resend verification email").count(), 0, "no resend button once verified");
    await signOut(t, page);

    // Forgot password, from the sign-in page's link.
    await page.getByRole("link", { name: "Forgot password?" }).click();
    await page.getByLabel("Email").fill(email);
    await button(page, "Send reset link").click();
    await page.getByText("If an account exists for that email, we sent a link.").waitFor();

    const changed = newPassword();
    await page.goto(await linkFromEmail(email, "/password/reset/"));
    await page.getByLabel("New password").fill(changed);
    await button(page, "Set password").click();
    await expectAccount(t, page, email);
    t.pass("the reset signs the user in");
    await signOut(t, page);

    await signInWithPassword(page, email, password);
    await page.getByText("Invalid email or password.").waitFor();
    t.pass("the old password no longer signs in");
    await signInWithPassword(page, email, changed);
    await expectAccount(t, page, email);
  });

  t.test("an invited user accepts with a passkey and signs in with it", async (t) => {
    const email = uniqueEmail("invited");
    const res = await runCli(["users", "invite", "--email", email, "--name", "Invited"], { ...env, ISSUER: issuer });
    t.equal(res.code, 0, `users invite exits 0 ${res.stderr}`);

    const context: BrowserContext = await newContext(t, browser);
    // No conditional mediation: an autofill request would be answered at once by the virtual authenticator.
    await context.addInitScript({ content: "if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);" });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });

    await page.goto(await linkFromEmail(email, "/invitation/"));
    await button(page, "Add a passkey").click();
    await expectAccount(t, page, email);
    t.equal(await page.locator("ul.passkeys > li").count(), 1, "the passkey is listed on /account");
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    t.equal(credentials.length, 1, "the authenticator holds one credential");
    const user = await db.prisma.user.findUnique({ where: { email } });
    t.equal(user?.emailVerified, true, "accepting the invitation verified the email");
    t.equal(user?.passwordHash, null, "and set no password");

    await signOut(t, page);
    await button(page, "Sign in with a passkey").click();
    await expectAccount(t, page, email);
    t.pass("the passkey signs the invited user in");
  });
}
