/**
 * Passkeys end to end: the real server (as `npm start` runs it) with a
 * temporary SQLite database, headless Chromium with the DevTools protocol's
 * virtual authenticator (a CTAP2 platform authenticator that holds
 * discoverable credentials and verifies the user by itself), pages driven by
 * their accessible names (README), and openid-client as the relying
 * party. The issuer is http://localhost:<port>: http://localhost is a secure
 * context, and a WebAuthn RP ID must be a domain (Chromium refuses
 * 127.0.0.1 with "This is an invalid domain").
 */
import t, { type Test } from "tap";
import { randomBytes } from "node:crypto";
import * as oidc from "openid-client";
import type { BrowserContext, CDPSession, Page } from "playwright-core";
import { launchBrowser, newContext, requireBrowser } from "../helpers/browser.ts";
import { processDatabase } from "../helpers/databases.ts";
import { runCli, startServer } from "../helpers/processes.ts";
import { beginAuthorization, completeAuthorization, discoverClient, startRelyingParty, type PendingAuthorization } from "../helpers/rp.ts";

const passkeyFailure = "This passkey could not be used to sign in.";
const lastWayToSignIn = "This is your only way to sign in: set a password or add another passkey first.";

if (requireBrowser(t)) {
  const { database, env } = await processDatabase(t);
  // An empty ISSUER leaves the server to its documented default,
  // http://localhost:<PORT>, on the port startServer chose.
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

  /** A new user with a password, made with `gatehouse users create --password-stdin`. */
  const createUser = async (t: Test, name: string): Promise<TestUser> => {
    const email = `${name.toLowerCase().replace(/\W+/g, ".")}.${randomBytes(4).toString("hex")}@example.test`;
    const password = `amber-kestrel-${randomBytes(9).toString("base64url")}`;
    const res = await runCli(["users", "create", "--email", email, "--name", name, "--password-stdin"], env, `${password}\n`);
    t.equal(res.code, 0, `users create exits 0 ${res.stderr}`);
    const { id } = JSON.parse(res.stdout) as { id: string };
    return { id, email, password };
  };

  /** A new confidential client whose redirect and post-logout URIs are the RP's. */
  const createClient = async (t: Test, name: string) => {
    const res = await runCli(
      ["clients", "create", "--name", name, "--redirect-uri", rp.callbackUrl, "--post-logout-redirect-uri", rp.postLogoutUrl, "--scope", "openid profile email"],
      env,
    );
    t.equal(res.code, 0, `clients create exits 0 ${res.stderr}`);
    const { client_id, client_secret } = JSON.parse(res.stdout) as { client_id: string; client_secret: string };
    return { clientId: client_id, config: await discoverClient(issuer, client_id, client_secret) };
  };

  interface VirtualAuthenticator {
    cdp: CDPSession;
    authenticatorId: string;
    credentials(): Promise<{ credentialId: string; rpId?: string; userHandle?: string; signCount: number; isResidentCredential: boolean }[]>;
  }

  /**
   * Chromium's virtual authenticator for `page`: platform (internal), resident
   * keys, user verification, presence simulated. With `autofill: false` the
   * pages see no conditional mediation: the virtual authenticator answers an
   * autofill request at once, with no choice by anyone, which would start a
   * second ceremony beside the one under test.
   */
  const addAuthenticator = async (context: BrowserContext, page: Page, options: { autofill: boolean }): Promise<VirtualAuthenticator> => {
    if (!options.autofill) {
      await context.addInitScript({
        content: "if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);",
      });
    }
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    return { cdp, authenticatorId, credentials: async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials };
  };

  const isInteraction = (url: URL) => url.origin === issuer && url.pathname.startsWith("/interaction/");
  const isCallback = (url: URL) => url.href.startsWith(`${rp.callbackUrl}?`);
  const signInButton = (page: Page) => page.getByRole("button", { name: "Sign in", exact: true });
  const passkeyButton = (page: Page) => page.getByRole("button", { name: "Sign in with a passkey", exact: true });

  const openSignIn = async (t: Test, page: Page, url: string) => {
    await page.goto(url);
    await signInButton(page).waitFor();
    t.ok(isInteraction(new URL(page.url())), `the sign-in page is an interaction page (${page.url()})`);
  };

  const signInWithPassword = async (page: Page, user: TestUser) => {
    await page.getByLabel("Email").fill(user.email);
    await page.getByLabel("Password").fill(user.password);
    await signInButton(page).click();
  };

  /** After sign-in: Allow on the consent page if it is shown; returns the callback URL. */
  const allowAndReturn = async (t: Test, page: Page, pending: PendingAuthorization): Promise<URL> => {
    const allow = page.getByRole("button", { name: "Allow", exact: true });
    await Promise.race([allow.waitFor(), page.waitForURL(isCallback)]);
    if (!isCallback(new URL(page.url()))) await allow.click();
    await page.waitForURL(isCallback);
    const callback = new URL(page.url());
    t.equal(callback.searchParams.get("error"), null, `no error in the callback (${callback.searchParams.get("error_description")})`);
    t.equal(callback.searchParams.get("state"), pending.state, "the callback carries the request's state");
    t.equal(callback.searchParams.get("iss"), issuer, "and the issuer (RFC 9207)");
    return callback;
  };

  /** /account in a signed-in context: the passkeys section. */
  const passkeyItems = (page: Page) => page.locator("ul.passkeys > li");
  const removeButtons = (page: Page) => page.getByRole("button", { name: /^Remove\b/ });

  const addPasskey = async (t: Test, page: Page, countBefore: number) => {
    await page.getByRole("button", { name: "Add a passkey", exact: true }).click();
    await removeButtons(page).nth(countBefore).waitFor();
    t.equal(await removeButtons(page).count(), countBefore + 1, "the new passkey is listed with a Remove button");
    t.ok(await page.locator("#passkey-error").isHidden(), "no error shown");
  };

  const auditEvents = async (userId: string, type: string) =>
    (await db.prisma.auditEvent.findMany({ where: { userId, type }, orderBy: { seq: "asc" } })).map((e) => JSON.parse(e.data) as Record<string, unknown>);

  t.test("a passkey added on /account signs the same user in without an email, until it is removed", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Ada Passkey"), createClient(t, "Passkey Notebook")]);
    const context = await newContext(t, browser);
    const page = await context.newPage();
    const authenticator = await addAuthenticator(context, page, { autofill: false });

    // 1. The code flow with the password; the ID token's sub is the user.
    const first = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    t.equal(first.url.origin, issuer, "the authorization endpoint is on the localhost issuer");
    await openSignIn(t, page, first.url.href);
    await signInWithPassword(page, user);
    const firstTokens = await completeAuthorization(client.config, await allowAndReturn(t, page, first), first);
    const sub = firstTokens.claims()!.sub;
    t.equal(sub, user.id, "signed in with the password: sub is the user's id");

    // 2. Add a passkey on /account (the session is the one the flow made).
    await page.goto(`${issuer}/account`);
    t.equal(new URL(page.url()).pathname, "/account", "/account opens in the signed-in session");
    await page.getByText("No passkeys yet.").waitFor();
    await addPasskey(t, page, 0);
    t.match(await passkeyItems(page).first().innerText(), /Passkey 1[\s\S]*last used never/, "named Passkey 1, never used");

    const [held] = await authenticator.credentials();
    t.ok(held?.isResidentCredential, "the authenticator holds a discoverable credential");
    t.equal(held?.rpId, "localhost", "for the RP ID localhost");
    t.equal(Buffer.from(held?.userHandle ?? "", "base64").toString("utf8"), user.id, "whose user handle is the user's id");
    const rows = await db.prisma.passkey.findMany({ where: { userId: user.id } });
    t.equal(rows.length, 1, "one Passkey row");
    const row = rows[0]!;
    t.same(Buffer.from(row.credentialId), Buffer.from(held!.credentialId, "base64"), "its credentialId is the authenticator's credential id, as bytes");
    t.equal(row.counter, BigInt(held!.signCount), `its counter is the authenticator's sign count (${held!.signCount})`);
    t.equal(row.deviceType, "singleDevice");
    t.equal(row.backedUp, false);
    t.same(JSON.parse(row.transports), ["internal"], "the transport the authenticator reported");
    t.same(
      (await auditEvents(user.id, "passkey.added")).map((d) => d.passkey_id),
      [row.id],
      "a passkey.added audit event",
    );

    // 3. RP-initiated logout.
    const endSession = oidc.buildEndSessionUrl(client.config, { id_token_hint: firstTokens.id_token!, post_logout_redirect_uri: rp.postLogoutUrl });
    await page.goto(endSession.href);
    await page.getByRole("button", { name: "Sign out", exact: true }).click();
    await page.waitForURL((url) => url.href.startsWith(rp.postLogoutUrl));
    t.pass("signed out through the end_session_endpoint");

    // 4. A new flow, signed in with the passkey button only: no email typed.
    const second = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    await openSignIn(t, page, second.url.href);
    t.equal(await page.getByLabel("Email").inputValue(), "", "the Email field is empty");
    await passkeyButton(page).click();
    const secondTokens = await completeAuthorization(client.config, await allowAndReturn(t, page, second), second);
    t.equal(secondTokens.claims()!.sub, sub, "the passkey signs in the same user: same sub");
    const used = await db.prisma.passkey.findUniqueOrThrow({ where: { id: row.id } });
    const [afterUse] = await authenticator.credentials();
    t.ok(afterUse!.signCount > held!.signCount, "the authenticator's sign count grew");
    t.equal(used.counter, BigInt(afterUse!.signCount), "and the stored counter followed it");
    t.ok(used.lastUsedAt, "last use recorded");
    t.same(
      (await auditEvents(user.id, "sign_in.succeeded")).map((d) => d.method),
      ["password", "passkey"],
      "sign_in.succeeded audited for the password, then the passkey",
    );

    // 5. Remove it on /account: the user has a password, so it is not the last way in.
    await page.goto(`${issuer}/account`);
    t.match(await passkeyItems(page).first().innerText(), /last used \d{4}-\d{2}-\d{2}/, "the list shows the last use");
    await removeButtons(page).first().click();
    await page.getByRole("status").filter({ hasText: "The passkey was removed." }).waitFor();
    t.equal(await removeButtons(page).count(), 0, "no passkey is listed any more");
    t.equal(await db.prisma.passkey.count({ where: { userId: user.id } }), 0, "the Passkey row is deleted");
    t.same((await auditEvents(user.id, "passkey.removed")).map((d) => d.passkey_id), [row.id], "a passkey.removed audit event");
    t.equal((await authenticator.credentials()).length, 1, "the authenticator still holds the credential");

    // 6. That credential no longer signs in: an error on the page, no redirect to the client.
    await context.clearCookies();
    const visitsBefore = rp.visits.length;
    const seqBefore = (await db.prisma.auditEvent.aggregate({ _max: { seq: true } }))._max.seq ?? 0;
    const third = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    await openSignIn(t, page, third.url.href);
    const signInUrl = page.url();
    await passkeyButton(page).click();
    const error = page.locator("#passkey-error");
    await error.waitFor({ state: "visible" });
    t.equal((await error.innerText()).trim(), passkeyFailure, "the page says the passkey could not be used");
    t.equal(page.url(), signInUrl, "the browser stays on the sign-in page");
    t.ok(await signInButton(page).isVisible(), "which still offers the password form");
    t.equal(rp.visits.length, visitsBefore, "the client received no callback");
    const failures = await db.prisma.auditEvent.findMany({ where: { seq: { gt: seqBefore }, type: { startsWith: "sign_in." } } });
    t.same(
      failures.map((e) => ({ type: e.type, userId: e.userId, data: JSON.parse(e.data) as unknown })),
      [{ type: "sign_in.failed", userId: null, data: { method: "passkey", reason: "unknown_credential" } }],
      "one sign_in.failed audit event, method passkey, reason unknown_credential",
    );
  });

  t.test("a user whose only way to sign in is a passkey cannot remove it", async (t) => {
    const user = await createUser(t, "Grace Passkey");
    const context = await newContext(t, browser);
    const page = await context.newPage();
    const authenticator = await addAuthenticator(context, page, { autofill: false });

    // /account without a session goes through sign-in and back.
    await openSignIn(t, page, `${issuer}/account`);
    await signInWithPassword(page, user);
    await page.waitForURL((url) => url.origin === issuer && url.pathname === "/account");
    await addPasskey(t, page, 0);
    const [row] = await db.prisma.passkey.findMany({ where: { userId: user.id } });
    t.ok(row, "the passkey is stored");

    await db.prisma.user.update({ where: { id: user.id }, data: { passwordHash: null } });
    await page.reload();
    await removeButtons(page).first().click();
    const alert = page.getByRole("alert").filter({ hasText: lastWayToSignIn });
    await alert.waitFor();
    t.pass("Remove is refused with the error notice");
    t.equal(await removeButtons(page).count(), 1, "the passkey is still listed");
    t.equal(await db.prisma.passkey.count({ where: { id: row!.id } }), 1, "the Passkey row stays");
    t.same(await auditEvents(user.id, "passkey.removed"), [], "no passkey.removed audit event");

    // And that passkey is indeed a way in: sign in to /account again with it alone.
    await context.clearCookies();
    await openSignIn(t, page, `${issuer}/account`);
    await passkeyButton(page).click();
    await page.waitForURL((url) => url.origin === issuer && url.pathname === "/account");
    await page.getByText(`Signed in as ${user.email}`).waitFor();
    t.pass("the passkey-only user signs in to /account with the passkey");
    t.ok((await authenticator.credentials())[0]!.signCount > 0, "the authenticator signed");
  });

  t.test("passkey autofill (conditional mediation) on the sign-in page signs in when the passkey is picked", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Hedy Autofill"), createClient(t, "Autofill Console")]);
    const context = await newContext(t, browser);
    const page = await context.newPage();
    // Autofill left on: the virtual authenticator picks its credential for
    // the page's conditional request, as a person choosing it would.
    await addAuthenticator(context, page, { autofill: true });

    await openSignIn(t, page, `${issuer}/account`);
    await signInWithPassword(page, user);
    await page.waitForURL((url) => url.origin === issuer && url.pathname === "/account");
    await addPasskey(t, page, 0);
    await context.clearCookies();

    const pending = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    await page.goto(pending.url.href);
    t.ok(await page.evaluate("PublicKeyCredential.isConditionalMediationAvailable()"), "the browser offers conditional mediation");
    // No click and nothing typed: the autofill request started by the page completes the sign-in.
    const tokens = await completeAuthorization(client.config, await allowAndReturn(t, page, pending), pending);
    t.equal(tokens.claims()!.sub, user.id, "signed in as the passkey's owner");
    t.same(
      (await auditEvents(user.id, "sign_in.succeeded")).map((d) => d.method),
      ["password", "passkey"],
      "the second sign-in was by passkey",
    );
  });
}
