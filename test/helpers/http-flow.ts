/**
 * Drives Gatehouse over HTTP without a browser: the app built in-process
 * (buildApp) and listening on 127.0.0.1, a cookie jar that honours cookie
 * paths and expiry, and helpers for the sign-in and consent forms. Everything
 * the server says is kept (statuses, headers, raw Set-Cookie lines) so that
 * tests can assert on it; openid-client (panva) builds the authorization
 * requests with PKCE and redeems the codes.
 */
import type { Test } from "tap";
import type { FastifyInstance, FastifyServerOptions } from "fastify";
import * as oidc from "openid-client";
import { buildApp } from "../../src/app.ts";
import type { Config } from "../../src/config.ts";
import type { Database, DatabaseProvider, OpenOptions } from "../../src/db/database.ts";
import { loadMasterKeyRing, type MasterKeyRing } from "../../src/crypto/master-keys.ts";
import { ensureSigningKeys } from "../../src/oidc/keys.ts";
import { createClient } from "../../src/services/clients.ts";
import { createUser } from "../../src/services/users.ts";
import { auditKeyOf } from "../../src/services/audit.ts";
import { createTestDatabase } from "./databases.ts";
import { testConfig } from "./config.ts";
import { reservePort } from "./processes.ts";

/** Never fetched: the flow stops at the redirect to it (redirect: "manual"). */
export const redirectUri = "http://127.0.0.1:9/cb";

export interface RunningApp {
  app: FastifyInstance;
  /** The issuer, http://127.0.0.1:<port>. */
  url: string;
  config: Config;
  db: Database;
  ring: MasterKeyRing;
}

/**
 * Builds the app on a fresh database (SQLite unless told otherwise), as server.ts would (master key,
 * signing keys, buildApp), without listening: for app.inject(). Closed at teardown.
 */
export interface AppOptions {
  /** Environment for testConfig (DATABASE_URL and, for startApp, ISSUER and PORT are set here). */
  env?: Record<string, string>;
  /** Options for openDatabase, e.g. onQuery. */
  open?: OpenOptions;
  provider?: DatabaseProvider;
  /** The app's logger (default: none), e.g. a pino stream the test reads. */
  logger?: FastifyServerOptions["logger"];
}

export async function buildTestApp(t: Test, { env = {}, open = {}, provider = "sqlite", logger = false }: AppOptions = {}): Promise<Omit<RunningApp, "url">> {
  const database = await createTestDatabase(t, provider);
  const config = testConfig(t, { DATABASE_URL: database.url, ...env });
  const ring = loadMasterKeyRing(config);
  const db = await database.open({ auditKey: auditKeyOf(ring), ...open });
  await ensureSigningKeys(db, ring);
  const app = await buildApp({ config, db, ring, logger });
  // tap runs teardowns last-added first: the app's, added after those of the
  // database and the config's folders, closes the app (its email worker, the
  // work it does after an answer) before its database is closed and dropped.
  // Before, the database went first, and a close waiting on work against it
  // could hang until the test's timeout.
  t.teardown(() => app.close());
  return { app, config, db, ring };
}

/**
 * buildTestApp() listening on a free loopback port, with ISSUER=http://127.0.0.1:<port>
 * (or http://localhost:<port> with `issuerHost`: WebAuthn RP IDs cannot be IP addresses).
 */
export async function startApp(t: Test, options: AppOptions & { issuerHost?: "127.0.0.1" | "localhost" } = {}): Promise<RunningApp> {
  const { port, release } = await reservePort();
  const url = `http://${options.issuerHost ?? "127.0.0.1"}:${port}`;
  const built = await buildTestApp(t, { ...options, env: { ISSUER: url, PORT: String(port), ...options.env } }).finally(release);
  await built.app.listen({ port, host: "127.0.0.1" });
  return { ...built, url };
}

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A pino logger configuration whose lines (parsed) the test can read in `logs`. */
export function captureLogs(level: "info" | "warn" = "info"): { logs: LogLine[]; logger: FastifyServerOptions["logger"] } {
  const logs: LogLine[] = [];
  return { logs, logger: { level, stream: { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) } } };
}

/** A password that passes the policy (not a common one). */
export function strongPassword(): string {
  return `quiet-harbor-${Math.random().toString(36).slice(2, 10)}-${Date.now().toString(36)}`;
}

let counter = 0;
/** An email no other test uses. */
export function uniqueEmail(prefix = "user"): string {
  counter += 1;
  return `${prefix}.${process.pid}.${counter}.${Date.now().toString(36)}@example.test`;
}

export interface TestUser {
  id: string;
  email: string;
  password: string;
}

export async function makeUser(running: Pick<RunningApp, "db" | "config">, input: { name?: string; email?: string; password?: string } = {}): Promise<TestUser> {
  const password = input.password ?? strongPassword();
  const email = input.email ?? uniqueEmail();
  const user = await createUser(running.db, running.config.argon2, { email, password, ...(input.name ? { name: input.name } : {}) });
  return { id: user.id, email: user.email, password };
}

export interface TestClient {
  clientId: string;
  clientSecret: string;
  /** openid-client's configuration for this client (client_secret_basic). */
  config: oidc.Configuration;
}

export async function makeClient(
  running: RunningApp,
  input: { name?: string; scope?: string; firstParty?: boolean; redirectUris?: string[] } = {},
): Promise<TestClient> {
  const created = await createClient(running.db, running.ring, {
    name: input.name ?? "Test client",
    redirectUris: input.redirectUris ?? [redirectUri],
    scope: input.scope ?? "openid profile email offline_access",
    firstParty: input.firstParty ?? false,
  });
  const clientSecret = created.client_secret!;
  const config = await oidc.discovery(new URL(running.url), created.client_id, clientSecret, oidc.ClientSecretBasic(clientSecret), {
    execute: [oidc.allowInsecureRequests],
  });
  return { clientId: created.client_id, clientSecret, config };
}

interface StoredCookie {
  name: string;
  value: string;
  path: string;
  expires: number | undefined;
}

/** The cookie's path attribute, or RFC 6265's default path of the request URL. */
function defaultPath(url: URL): string {
  const p = url.pathname;
  if (!p.startsWith("/") || p.lastIndexOf("/") === 0) return "/";
  return p.slice(0, p.lastIndexOf("/"));
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith("/") || requestPath[cookiePath.length] === "/";
}

/** One host's cookies, with RFC 6265 path matching and expiry. Enough for one issuer. */
export class CookieJar {
  #cookies: StoredCookie[] = [];
  /** Every Set-Cookie line received, in order (for attribute assertions). */
  readonly received: string[] = [];

  store(url: URL, setCookies: string[]): void {
    for (const line of setCookies) {
      this.received.push(line);
      const [pair, ...attributes] = line.split(";").map((s) => s.trim());
      const eq = pair!.indexOf("=");
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      let path = defaultPath(url);
      let expires: number | undefined;
      for (const attribute of attributes) {
        const [key, ...rest] = attribute.split("=");
        const v = rest.join("=");
        const k = key!.toLowerCase();
        if (k === "path" && v.startsWith("/")) path = v;
        else if (k === "max-age") expires = Date.now() + Number(v) * 1000;
        else if (k === "expires" && expires === undefined) expires = Date.parse(v);
      }
      this.#cookies = this.#cookies.filter((c) => !(c.name === name && c.path === path));
      if (expires === undefined || expires > Date.now()) this.#cookies.push({ name, value, path, expires });
    }
  }

  /** The Cookie header for `url`, longest paths first as browsers send them. */
  header(url: URL): string {
    const now = Date.now();
    this.#cookies = this.#cookies.filter((c) => c.expires === undefined || c.expires > now);
    return this.#cookies
      .filter((c) => pathMatches(url.pathname, c.path))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join("; ");
  }

  names(): string[] {
    return this.#cookies.map((c) => c.name);
  }

  /** Set-Cookie lines received for cookie `name` (latest last). */
  linesFor(name: string): string[] {
    return this.received.filter((line) => line.startsWith(`${name}=`));
  }
}

export interface Response {
  url: URL;
  status: number;
  headers: Headers;
  body: string;
  location: URL | undefined;
}

/**
 * A browser behind a TLS-terminating proxy, through app.inject: every request
 * says X-Forwarded-Proto https and the issuer's Host; cookies are kept (one
 * flow, so names suffice) and every Set-Cookie line is recorded.
 */
export function injectBehindTls(app: FastifyInstance, issuer: string) {
  const cookies = new Map<string, string>();
  const setCookies: string[] = [];
  const inject = async (method: "GET" | "POST", url: string, form?: Record<string, string>) => {
    const res = await app.inject({
      method,
      url,
      headers: {
        "x-forwarded-proto": "https",
        host: new URL(issuer).host,
        cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; "),
        ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}),
      },
      ...(form ? { payload: new URLSearchParams(form).toString() } : {}),
    });
    for (const line of ([] as string[]).concat(res.headers["set-cookie"] ?? [])) {
      setCookies.push(line);
      const pair = line.split(";")[0]!;
      const name = pair.slice(0, pair.indexOf("="));
      if (/expires=Thu, 01 Jan 1970/i.test(line)) cookies.delete(name);
      else cookies.set(name, pair.slice(pair.indexOf("=") + 1));
    }
    return res;
  };
  return { inject, cookies, setCookies };
}

/** A browser-like HTTP client: one cookie jar, no automatic redirects. */
export class Browser {
  readonly jar = new CookieJar();
  /** `defaultHeaders` go with every request (e.g. X-Forwarded-For behind a trusted proxy). */
  constructor(
    readonly origin: string,
    readonly defaultHeaders: Record<string, string> = {},
  ) {}

  async request(target: string | URL, init: { method?: string; form?: Record<string, string>; json?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
    const url = new URL(target, this.origin);
    const headers: Record<string, string> = { "user-agent": "gatehouse-tests", ...this.defaultHeaders, ...init.headers };
    if (url.origin === this.origin) {
      const cookie = this.jar.header(url);
      if (cookie) headers.cookie = cookie;
    }
    let body: string | undefined;
    if (init.form) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(init.form).toString();
    } else if (init.json !== undefined) {
      // As the pages' scripts send it.
      headers["content-type"] = "application/json";
      body = JSON.stringify(init.json);
    }
    const res = await fetch(url, { method: init.method ?? (body ? "POST" : "GET"), headers, body, redirect: "manual" });
    if (url.origin === this.origin) this.jar.store(url, res.headers.getSetCookie());
    const location = res.headers.get("location");
    return { url, status: res.status, headers: res.headers, body: await res.text(), location: location ? new URL(location, url) : undefined };
  }

  /**
   * Follows redirects within the issuer; stops at the first response that is
   * not a redirect, or at a redirect that leaves the issuer (the client's
   * redirect_uri). Returns every response, in order.
   */
  async follow(target: string | URL, init: { form?: Record<string, string> } = {}): Promise<Response[]> {
    const chain: Response[] = [await this.request(target, init)];
    for (let hops = 0; hops < 10; hops++) {
      const last = chain[chain.length - 1]!;
      if (!last.location || last.status < 300 || last.status >= 400 || last.location.origin !== this.origin) return chain;
      chain.push(await this.request(last.location));
    }
    throw new Error("too many redirects");
  }

  /** Submits a page's form (sign-in or consent) with its CSRF token and `fields`. */
  async submit(page: Response, fields: Record<string, string>, options: { csrf?: string | null } = {}): Promise<Response[]> {
    const action = formAction(page.body);
    const csrf = options.csrf === undefined ? csrfToken(page.body) : options.csrf;
    return this.follow(action, { form: { ...(csrf === null ? {} : { csrf }), ...fields } });
  }
}

export function last<T>(items: T[]): T {
  return items[items.length - 1]!;
}

/** The CSRF token of the first form on a page. */
export function csrfToken(html: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error(`no CSRF token in the page: ${html.slice(0, 500)}`);
  return match[1]!;
}

/** The action of the first form on a page (HTML-decoded). */
export function formAction(html: string): string {
  const match = /<form method="post" action="([^"]+)"/.exec(html);
  if (!match) throw new Error(`no form in the page: ${html.slice(0, 500)}`);
  return match[1]!.replace(/&amp;/g, "&");
}

/** The text of the error paragraph (role="alert") of a sign-in page, if shown. */
export function errorParagraph(html: string): string | undefined {
  return /<p class="error" role="alert">([^<]*)<\/p>/.exec(html)?.[1];
}

export const isSignInPage = (html: string) => html.includes('id="sign-in-form"');
export const isConsentPage = (html: string) => html.includes('name="decision" value="allow"');

export interface PendingAuthorization {
  url: URL;
  codeVerifier: string;
  state: string;
  nonce: string;
}

/** An authorization URL with PKCE S256, state and nonce (openid-client). */
export async function authorizationUrl(
  client: TestClient,
  params: Record<string, string> = {},
): Promise<PendingAuthorization> {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(client.config, {
    redirect_uri: redirectUri,
    scope: "openid email",
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: "S256",
    state,
    nonce,
    ...params,
  });
  return { url, codeVerifier, state, nonce };
}

/**
 * Authorization request, sign-in, and (when asked) consent with Allow, in
 * `browser`; returns the callback URL (the redirect to redirect_uri).
 */
export async function signInAndConsent(browser: Browser, pending: PendingAuthorization, user: TestUser): Promise<URL> {
  let page = last(await browser.follow(pending.url));
  if (isSignInPage(page.body)) {
    page = last(await browser.submit(page, { email: user.email, password: user.password }));
  }
  if (isConsentPage(page.body)) {
    page = last(await browser.submit(page, { decision: "allow" }));
  }
  if (!page.location || !page.location.href.startsWith(`${redirectUri}?`)) {
    throw new Error(`the flow did not end at the redirect_uri: ${page.status} ${page.location?.href ?? ""} ${page.body.slice(0, 300)}`);
  }
  return page.location;
}

/** Redeems the code of `callback` with openid-client (checks state, nonce, PKCE, ID token). */
export function redeem(client: TestClient, callback: URL, pending: PendingAuthorization) {
  return oidc.authorizationCodeGrant(client.config, callback, {
    pkceCodeVerifier: pending.codeVerifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
    idTokenExpected: true,
  });
}

/** A raw POST to the token endpoint with client_secret_basic, for requests openid-client would not send. */
export async function tokenRequest(running: RunningApp, client: Pick<TestClient, "clientId" | "clientSecret">, form: Record<string, string>) {
  const res = await fetch(`${running.url}/token`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams(form),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}
