/**
 * The authorization code flow end to end: the real server (as `npm start`
 * runs it) on 127.0.0.1 with a temporary SQLite database, users and clients
 * made with the real CLI, headless Chromium on the sign-in, consent and
 * sign-out pages (driven by their accessible names, the README), and
 * openid-client as the relying party, which checks PKCE, state, nonce and the
 * ID token's signature against the JWKS.
 */
import t, { type Test } from "tap";
import { randomBytes } from "node:crypto";
import * as oidc from "openid-client";
import { decodeProtectedHeader } from "jose";
import type { Page } from "playwright-core";
import { launchBrowser, newContext, requireBrowser } from "../helpers/browser.ts";
import { processDatabase } from "../helpers/databases.ts";
import { runCli, startServer } from "../helpers/processes.ts";
import { beginAuthorization, completeAuthorization, discoverClient, startRelyingParty, type PendingAuthorization } from "../helpers/rp.ts";

const invalidCredentials = "Invalid email or password.";

if (requireBrowser(t)) {
  const { env } = await processDatabase(t);
  const server = await startServer(t, env);
  const browser = await launchBrowser(t);
  const rp = await startRelyingParty(t);

  interface TestUser {
    id: string;
    email: string;
    name: string;
    password: string;
  }

  /** A new user, made with `gatehouse users create --password-stdin`. */
  const createUser = async (t: Test, name: string): Promise<TestUser> => {
    const tag = randomBytes(4).toString("hex");
    const email = `${name.toLowerCase().replace(/\W+/g, ".")}.${tag}@example.test`;
    const password = `tall-lantern-${randomBytes(9).toString("base64url")}`;
    const res = await runCli(["users", "create", "--email", email, "--name", name, "--password-stdin"], env, `${password}\n`);
    t.equal(res.code, 0, `users create exits 0 ${res.stderr}`);
    const created = JSON.parse(res.stdout) as { id: string; email: string };
    t.equal(created.email, email);
    return { id: created.id, email, name, password };
  };

  /** A new confidential client whose redirect and post-logout URIs are the RP's. */
  const createClient = async (t: Test, name: string, options: { firstParty?: boolean; scope?: string } = {}) => {
    const args = ["clients", "create", "--name", name, "--redirect-uri", rp.callbackUrl, "--post-logout-redirect-uri", rp.postLogoutUrl];
    if (options.firstParty) args.push("--first-party");
    args.push("--scope", options.scope ?? "openid profile email offline_access");
    const res = await runCli(args, env);
    t.equal(res.code, 0, `clients create exits 0 ${res.stderr}`);
    const { client_id, client_secret } = JSON.parse(res.stdout) as { client_id: string; client_secret: string };
    return { name, clientId: client_id, config: await discoverClient(server.url, client_id, client_secret) };
  };

  /** Main-frame documents the page committed to, in order (redirect hops excluded). */
  const trackDocuments = (page: Page): URL[] => {
    const seen: URL[] = [];
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) seen.push(new URL(frame.url()));
    });
    return seen;
  };

  const isInteraction = (url: URL) => url.origin === server.url && url.pathname.startsWith("/interaction/");
  const isCallback = (url: URL) => url.href.startsWith(`${rp.callbackUrl}?`);

  /** Sends the browser to the authorization URL and checks it lands on the sign-in page through a 303. */
  const openSignIn = async (t: Test, page: Page, pending: PendingAuthorization) => {
    const response = await page.goto(pending.url.href);
    const landed = new URL(page.url());
    t.ok(isInteraction(landed), `the authorization request lands on /interaction/{uid} (got ${landed.href})`);
    const hop = response?.request().redirectedFrom();
    t.equal(hop && new URL(hop.url()).pathname, "/auth", "redirected from the authorization endpoint");
    t.equal((await hop?.response())?.status(), 303, "with a 303");
    t.equal(response?.status(), 200, "the sign-in page answers 200");
  };

  const submitSignIn = async (page: Page, email: string, password: string) => {
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
  };

  /** Waits for the browser to land on the RP's redirect_uri; returns that URL. */
  const waitForCallback = async (page: Page): Promise<URL> => {
    await page.waitForURL((url) => isCallback(url));
    return new URL(page.url());
  };

  /** Checks the callback's parameters: code, state, iss (RFC 9207), no error. */
  const checkCallback = (t: Test, callback: URL, pending: PendingAuthorization) => {
    t.equal(callback.searchParams.get("error"), null, `no error in the callback (${callback.searchParams.get("error_description")})`);
    t.match(callback.searchParams.get("code"), /^\S{20,}$/, "the callback carries a code");
    t.equal(callback.searchParams.get("state"), pending.state, "and the request's state");
    t.equal(callback.searchParams.get("iss"), server.url, "and the issuer (RFC 9207)");
    t.ok(rp.visits.some((v) => v.href === callback.href), "the relying party's server received the callback");
  };

  /**
   * The whole browser part of a flow that needs sign-in and consent:
   * authorization request, sign-in, consent page (checked), Allow.
   */
  const signInAndAllow = async (t: Test, page: Page, pending: PendingAuthorization, user: TestUser, clientName: string) => {
    await openSignIn(t, page, pending);
    await submitSignIn(page, user.email, user.password);
    const allow = page.getByRole("button", { name: "Allow", exact: true });
    await allow.waitFor();
    t.ok(isInteraction(new URL(page.url())), "the consent page is an interaction page");
    t.ok(await page.getByRole("button", { name: "Deny", exact: true }).isVisible(), "the consent page offers Deny");
    const text = await page.locator("body").innerText();
    t.match(text, clientName, "the consent page names the client");
    await allow.click();
    const callback = await waitForCallback(page);
    checkCallback(t, callback, pending);
    return { callback, consentText: text };
  };

  t.test("the code flow with consent issues a validated ID token and userinfo for the signed-in user", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Ada Lovelace"), createClient(t, "Analytical Engine Reports")]);
    const page = await (await newContext(t, browser)).newPage();
    const scope = "openid profile email";
    const pending = await beginAuthorization(client.config, rp.callbackUrl, { scope });

    const { callback, consentText } = await signInAndAllow(t, page, pending, user, client.name);
    for (const s of ["profile", "email"]) t.match(consentText, s, `the consent page lists the ${s} scope`);
    t.notMatch(consentText, "offline_access", "and not a scope that was not requested");

    const tokens = await completeAuthorization(client.config, callback, pending);
    t.equal(tokens.token_type.toLowerCase(), "bearer");
    t.equal(tokens.refresh_token, undefined, "no refresh token without offline_access");
    t.same(tokens.scope?.split(" ").sort(), ["email", "openid", "profile"], "the granted scopes are the requested ones");
    t.equal(decodeProtectedHeader(tokens.id_token!).alg, "RS256", "the ID token is signed RS256 (the registration default)");
    const claims = tokens.claims()!;
    t.equal(claims.sub, user.id, "sub is the id `users create` printed");
    t.equal(claims.iss, server.url);
    t.equal(claims.aud, client.clientId);
    t.equal(claims.nonce, pending.nonce);
    t.equal(claims.email, user.email);
    t.equal(claims.name, user.name);

    const userinfo = await oidc.fetchUserInfo(client.config, tokens.access_token, user.id);
    t.equal(userinfo.sub, user.id);
    t.equal(userinfo.email, user.email);
    t.equal(userinfo.name, user.name);
    t.equal(userinfo.role, undefined, "role is released only with the roles scope");

    await t.rejects(completeAuthorization(client.config, callback, pending), { code: "OAUTH_RESPONSE_BODY_ERROR", error: "invalid_grant" }, "a code is redeemed once only");
  });

  t.test("Deny on the consent page returns access_denied to the client", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Grace Hopper"), createClient(t, "Compiler Dashboard")]);
    const page = await (await newContext(t, browser)).newPage();
    const pending = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email" });
    await openSignIn(t, page, pending);
    await submitSignIn(page, user.email, user.password);
    await page.getByRole("button", { name: "Deny", exact: true }).click();
    const callback = await waitForCallback(page);
    t.equal(callback.searchParams.get("error"), "access_denied");
    t.equal(callback.searchParams.get("state"), pending.state);
    t.equal(callback.searchParams.get("code"), null, "no code");
  });

  t.test("a rotated-out refresh token presented again revokes the whole grant", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Katherine Johnson"), createClient(t, "Trajectory Planner")]);
    const page = await (await newContext(t, browser)).newPage();
    const pending = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid email offline_access", prompt: "consent" });
    const { callback, consentText } = await signInAndAllow(t, page, pending, user, client.name);
    t.match(consentText, "offline_access", "the consent page lists offline_access");
    const first = await completeAuthorization(client.config, callback, pending);
    t.type(first.refresh_token, "string", "offline_access (with prompt=consent) gives a refresh token");
    t.equal((await oidc.tokenIntrospection(client.config, first.refresh_token!)).active, true, "the refresh token introspects as active");

    const second = await oidc.refreshTokenGrant(client.config, first.refresh_token!);
    t.type(second.refresh_token, "string", "refreshing returns a new refresh token");
    t.not(second.refresh_token, first.refresh_token, "the refresh token rotated");
    t.not(second.access_token, first.access_token, "and a new access token");
    t.equal(second.claims()?.sub, user.id, "the refreshed ID token is for the same user");
    const secondIntrospection = await oidc.tokenIntrospection(client.config, second.access_token);
    t.equal(secondIntrospection.active, true, "the new access token is active");
    t.equal(secondIntrospection.sub, user.id);

    await t.rejects(oidc.refreshTokenGrant(client.config, first.refresh_token!), { code: "OAUTH_RESPONSE_BODY_ERROR", error: "invalid_grant" }, "the rotated-out refresh token is refused");
    await t.rejects(
      oidc.refreshTokenGrant(client.config, second.refresh_token!),
      { code: "OAUTH_RESPONSE_BODY_ERROR", error: "invalid_grant" },
      "after the reuse, the newest refresh token is refused too: the grant is revoked",
    );
    t.equal((await oidc.tokenIntrospection(client.config, second.access_token)).active, false, "the newest access token introspects as inactive");
    t.equal((await oidc.tokenIntrospection(client.config, first.access_token)).active, false, "and so does the first one");
    await t.rejects(oidc.fetchUserInfo(client.config, second.access_token, user.id), "userinfo refuses the revoked access token");
  });

  t.test("a revoked access token introspects as inactive and is refused by userinfo", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Margaret Hamilton"), createClient(t, "Flight Software Console")]);
    const page = await (await newContext(t, browser)).newPage();
    const pending = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid profile" });
    const { callback } = await signInAndAllow(t, page, pending, user, client.name);
    const tokens = await completeAuthorization(client.config, callback, pending);

    const before = await oidc.tokenIntrospection(client.config, tokens.access_token);
    t.equal(before.active, true, "active before revocation");
    t.equal(before.sub, user.id);
    t.equal(before.client_id, client.clientId);

    await oidc.tokenRevocation(client.config, tokens.access_token, { token_type_hint: "access_token" });
    t.equal((await oidc.tokenIntrospection(client.config, tokens.access_token)).active, false, "inactive after RFC 7009 revocation");
    await t.rejects(oidc.fetchUserInfo(client.config, tokens.access_token, user.id), "userinfo refuses it");
  });

  t.test("scopes already granted are not asked again in the same browser session", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Hedy Lamarr"), createClient(t, "Frequency Hopper")]);
    const page = await (await newContext(t, browser)).newPage();
    const scope = "openid profile email";
    const firstRequest = await beginAuthorization(client.config, rp.callbackUrl, { scope });
    const { callback: firstCallback } = await signInAndAllow(t, page, firstRequest, user, client.name);
    await completeAuthorization(client.config, firstCallback, firstRequest);

    const documents = trackDocuments(page);
    const secondRequest = await beginAuthorization(client.config, rp.callbackUrl, { scope });
    await page.goto(secondRequest.url.href);
    const callback = await waitForCallback(page);
    checkCallback(t, callback, secondRequest);
    t.same(
      documents.map((u) => u.href),
      [callback.href],
      "the browser went straight back to the redirect_uri: no sign-in page, no consent page",
    );
    const tokens = await completeAuthorization(client.config, callback, secondRequest);
    t.equal(tokens.claims()?.sub, user.id, "for the same user");
  });

  t.test("a first-party client skips the consent page", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Radia Perlman"), createClient(t, "Gatehouse Console", { firstParty: true })]);
    const page = await (await newContext(t, browser)).newPage();
    const pending = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid profile email" });
    await openSignIn(t, page, pending);
    const documents = trackDocuments(page);
    await submitSignIn(page, user.email, user.password);
    const callback = await waitForCallback(page);
    checkCallback(t, callback, pending);
    t.same(
      documents.map((u) => u.href),
      [callback.href],
      "after sign-in the browser went straight back to the redirect_uri: no consent page",
    );
    const tokens = await completeAuthorization(client.config, callback, pending);
    t.equal(tokens.claims()?.sub, user.id);
    t.same(tokens.scope?.split(" ").sort(), ["email", "openid", "profile"], "every requested scope is granted");
  });

  t.test("RP-initiated logout ends the session: the next authorization request asks to sign in again", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Barbara Liskov"), createClient(t, "Substitution Checker")]);
    const page = await (await newContext(t, browser)).newPage();
    const scope = "openid profile";
    const pending = await beginAuthorization(client.config, rp.callbackUrl, { scope });
    const { callback } = await signInAndAllow(t, page, pending, user, client.name);
    const tokens = await completeAuthorization(client.config, callback, pending);

    const state = oidc.randomState();
    const endSession = oidc.buildEndSessionUrl(client.config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: rp.postLogoutUrl,
      state,
    });
    t.equal(endSession.origin, server.url, "the end_session_endpoint is on the issuer");
    const confirm = await page.goto(endSession.href);
    t.equal(confirm?.status(), 200, "the sign-out confirmation page answers 200");
    await page.getByRole("button", { name: "Sign out", exact: true }).click();
    await page.waitForURL((url) => url.href.startsWith(`${rp.postLogoutUrl}?`) || url.href === rp.postLogoutUrl);
    const loggedOut = new URL(page.url());
    t.equal(`${loggedOut.origin}${loggedOut.pathname}`, rp.postLogoutUrl, "the browser lands on post_logout_redirect_uri");
    t.equal(loggedOut.searchParams.get("state"), state, "with the state");

    const again = await beginAuthorization(client.config, rp.callbackUrl, { scope });
    await openSignIn(t, page, again);
    t.ok(await page.getByLabel("Email").isVisible(), "the sign-in form is shown again");
    t.ok(await page.getByLabel("Password").isVisible());
  });

  t.test("a wrong password and an unknown email show the same message", async (t) => {
    const [user, client] = await Promise.all([createUser(t, "Frances Allen"), createClient(t, "Optimizer Lab")]);
    const page = await (await newContext(t, browser)).newPage();
    const pending = await beginAuthorization(client.config, rp.callbackUrl, { scope: "openid" });
    await openSignIn(t, page, pending);

    const signInForm = page.locator("form").filter({ has: page.getByRole("button", { name: "Sign in", exact: true }) });
    const attempt = async (email: string, password: string) => {
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === "POST" && r.request().isNavigationRequest()),
        submitSignIn(page, email, password),
      ]);
      const message = page.getByText(invalidCredentials, { exact: true });
      await message.waitFor();
      t.ok(isInteraction(new URL(page.url())), "still on the sign-in page");
      t.ok(await page.getByLabel("Password").isVisible(), "which offers the form again");
      return {
        status: response.status(),
        message: (await message.innerText()).trim(),
        title: await page.title(),
        form: await signInForm.innerText(),
      };
    };

    const wrongPassword = await attempt(user.email, `${user.password}-wrong`);
    t.equal(wrongPassword.message, invalidCredentials, "a wrong password shows the message");
    t.ok(wrongPassword.status >= 400 && wrongPassword.status < 500, `and answers with a 4xx (${wrongPassword.status})`);
    const unknownEmail = await attempt(`nobody.${randomBytes(4).toString("hex")}@example.test`, user.password);
    t.equal(unknownEmail.message, invalidCredentials, "an unknown email shows the same message");
    // The live page also runs passkey autofill, whose outcome is unrelated to
    // the password check, so the comparison is of what the server rendered for it.
    t.same(
      { status: unknownEmail.status, title: unknownEmail.title, form: unknownEmail.form },
      { status: wrongPassword.status, title: wrongPassword.title, form: wrongPassword.form },
      "with the same status, title and form: nothing tells which was wrong",
    );

    await submitSignIn(page, user.email, user.password);
    await page.getByRole("button", { name: "Allow", exact: true }).waitFor();
    t.pass("the right password still signs in afterwards");
  });
}
