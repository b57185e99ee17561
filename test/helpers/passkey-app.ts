/**
 * The app for passkey tests: built in-process on a fresh SQLite database and
 * listening on 127.0.0.1 with ISSUER=http://localhost:<port> (a WebAuthn RP
 * ID must be a domain, not an IP address), plus the JSON calls the pages'
 * scripts make and a soft authenticator registered through the same service
 * the account page calls.
 */
import type { Test } from "tap";
import type { FastifyServerOptions } from "fastify";
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from "@simplewebauthn/server";
import { relyingPartyFor, type RelyingParty } from "../../src/auth/passkeys.ts";
import { finishPasskeyRegistration, startPasskeyRegistration } from "../../src/services/passkeys.ts";
import { findUserById } from "../../src/db/users.ts";
import { Browser, authorizationUrl, isSignInPage, last, startApp, type RunningApp, type TestClient, type TestUser } from "./http-flow.ts";
import { SoftAuthenticator } from "./soft-authenticator.ts";

export interface PasskeyApp extends RunningApp {
  rp: RelyingParty;
}

/** The app with ISSUER=http://localhost:<port>, where passkeys work (see startApp). */
export async function startPasskeyApp(t: Test, env: Record<string, string> = {}, logger?: FastifyServerOptions["logger"]): Promise<PasskeyApp> {
  const running = await startApp(t, { env, issuerHost: "localhost", logger });
  return { ...running, rp: relyingPartyFor(running.config.issuer) };
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
  /** Milliseconds from sending to the end of the body. */
  ms: number;
}

/** A JSON POST with the browser's cookies, as the pages' scripts send it; `body` a string is sent as is. */
export async function postJson(browser: Browser, path: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  const url = new URL(path, browser.origin);
  const started = performance.now();
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "user-agent": "gatehouse-tests", cookie: browser.jar.header(url), ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    redirect: "manual",
  });
  browser.jar.store(url, res.headers.getSetCookie());
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { text };
  }
  return { status: res.status, headers: res.headers, json, ms: performance.now() - started };
}

export interface PasskeySignInPage {
  browser: Browser;
  uid: string;
  /** The interaction's CSRF token, from the passkey button's data-csrf. */
  csrf: string;
}

/** An authorization request (openid-client, PKCE) up to the sign-in page. */
export async function openPasskeySignIn(running: RunningApp, client: TestClient, browser = new Browser(running.url)): Promise<PasskeySignInPage> {
  const page = last(await browser.follow((await authorizationUrl(client)).url));
  const uid = /^\/interaction\/([^/]+)$/.exec(page.url.pathname)?.[1];
  const csrf = /id="passkey-sign-in" data-uid="[^"]*" data-csrf="([^"]+)"/.exec(page.body)?.[1];
  if (!isSignInPage(page.body) || !uid || !csrf) throw new Error(`not a sign-in page with a passkey button: ${page.url.href}`);
  return { browser, uid, csrf };
}

export async function authenticationOptions(signIn: PasskeySignInPage) {
  const res = await postJson(signIn.browser, `/interaction/${signIn.uid}/passkey/options`, {}, { "x-csrf-token": signIn.csrf });
  if (res.status !== 200) throw new Error(`no passkey options: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json as { challengeId: string; options: PublicKeyCredentialRequestOptionsJSON };
}

export function sendAssertion(signIn: PasskeySignInPage, body: unknown) {
  return postJson(signIn.browser, `/interaction/${signIn.uid}/passkey`, body, { "x-csrf-token": signIn.csrf });
}

/** Registers a soft authenticator for `user` through the same service the account page calls. */
export async function registerPasskey(running: PasskeyApp, user: TestUser): Promise<SoftAuthenticator> {
  const row = (await findUserById(running.db.prisma, user.id))!;
  const { challengeId, options } = await startPasskeyRegistration(running.db, running.rp, row);
  const authenticator = new SoftAuthenticator(running.url);
  await finishPasskeyRegistration(running.db, running.rp, row, { challengeId, response: authenticator.register(options) }, { ip: "127.0.0.1", userAgent: "tests" });
  return authenticator;
}

export interface AccountPage {
  browser: Browser;
  /** The session's CSRF token (every form of /account carries it). */
  csrf: string;
}

/** A session on /account, signed in with the password through the account client. */
export async function openAccount(running: RunningApp, user: TestUser): Promise<AccountPage> {
  const browser = new Browser(running.url);
  let page = last(await browser.follow("/account"));
  if (!isSignInPage(page.body)) throw new Error("/account without a session did not ask to sign in");
  page = last(await browser.submit(page, { email: user.email, password: user.password }));
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1];
  if (page.url.pathname !== "/account" || page.status !== 200 || !csrf) throw new Error(`not the account page: ${page.status} ${page.body.slice(0, 300)}`);
  return { browser, csrf };
}

export async function registrationOptions(account: AccountPage) {
  const res = await postJson(account.browser, "/account/passkeys/options", {}, { "x-csrf-token": account.csrf });
  if (res.status !== 200) throw new Error(`no registration options: ${res.status} ${JSON.stringify(res.json)}`);
  return res.json as { challengeId: string; options: PublicKeyCredentialCreationOptionsJSON };
}
