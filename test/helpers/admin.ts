/**
 * Helpers for the admin API's tests (README): admin clients and their
 * tokens from the real token endpoint (client_credentials, HTTP Basic, no
 * resource parameter), JSON calls to /admin/v1, snapshots of every table to
 * prove that a refused call wrote nothing, and a signed-in user with tokens
 * from a real code flow (through test/helpers/http-flow.ts) for the
 * revocation routes to revoke.
 */
import * as oidc from "openid-client";
import type { Database } from "../../src/db/database.ts";
import { storedIdsFor } from "../../src/crypto/stored-ids.ts";
import { createClient } from "../../src/services/clients.ts";
import { finishPasskeyRegistration, startPasskeyRegistration, type PasskeyView } from "../../src/services/passkeys.ts";
import { relyingPartyFor } from "../../src/auth/passkeys.ts";
import { findUserById } from "../../src/db/users.ts";
import { SoftAuthenticator } from "./soft-authenticator.ts";
import { Browser, authorizationUrl, makeClient, makeUser, redeem, signInAndConsent, type RunningApp, type TestClient, type TestUser } from "./http-flow.ts";

export const adminBase = "/admin/v1";

export interface AdminClient {
  clientId: string;
  clientSecret: string;
  scope: string;
  /** A fresh access token from the token endpoint. */
  token: string;
}

export interface TokenResponse {
  status: number;
  json: Record<string, unknown>;
}

/** POST /token with grant_type=client_credentials and HTTP Basic client authentication. */
export async function clientCredentialsToken(running: Pick<RunningApp, "url">, clientId: string, clientSecret: string, scope: string): Promise<TokenResponse> {
  const res = await fetch(`${running.url}/token`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ grant_type: "client_credentials", scope }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/**
 * A client allowed `scope` (e.g. "admin:read admin:revoke"), created through
 * the same service as the CLI, and an access token for exactly that scope.
 */
export async function makeAdminClient(running: Pick<RunningApp, "url" | "db" | "ring">, scope: string, name = `Admin (${scope})`): Promise<AdminClient> {
  const created = await createClient(running.db, running.ring, { name, grantTypes: ["client_credentials"], scope });
  const clientSecret = created.client_secret!;
  const res = await clientCredentialsToken(running, created.client_id, clientSecret, scope);
  if (res.status !== 200 || typeof res.json.access_token !== "string") {
    throw new Error(`no admin token for ${scope}: ${res.status} ${JSON.stringify(res.json)}`);
  }
  return { clientId: created.client_id, clientSecret, scope, token: res.json.access_token };
}

/** Admin tokens for each of the scopes the tests need, one client each. */
export async function makeAdminClients(running: Pick<RunningApp, "url" | "db" | "ring">) {
  return {
    read: await makeAdminClient(running, "admin:read"),
    revoke: await makeAdminClient(running, "admin:revoke"),
    write: await makeAdminClient(running, "admin:write"),
    all: await makeAdminClient(running, "admin:read admin:revoke admin:write"),
  };
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON body, or undefined when there is none (204) or it is not JSON. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface CallOptions {
  /** A Bearer token; null sends no Authorization header. */
  token?: string | null;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is (malformed JSON, oversized bodies), with `contentType`. */
  rawBody?: string;
  contentType?: string;
  /** Replaces the Authorization header (e.g. a Basic header). */
  authorization?: string;
  headers?: Record<string, string>;
}

/** One HTTP call to the running app; `path` is absolute (starts with /admin/v1). */
export async function adminCall(running: Pick<RunningApp, "url">, method: string, path: string, options: CallOptions = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { "user-agent": "gatehouse-admin-tests", ...options.headers };
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  else if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined) {
    body = options.rawBody;
    headers["content-type"] = options.contentType ?? "application/json";
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["content-type"] = "application/json";
  }
  const res = await fetch(`${running.url}${path}`, { method, headers, body, redirect: "manual" });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** adminCall bound to one token. */
export class AdminApi {
  constructor(
    readonly running: Pick<RunningApp, "url">,
    readonly token: string,
  ) {}

  call(method: string, path: string, options: Omit<CallOptions, "token"> = {}) {
    return adminCall(this.running, method, path, { token: this.token, ...options });
  }
  get(path: string) {
    return this.call("GET", path);
  }
  post(path: string, body?: unknown) {
    return this.call("POST", path, body === undefined ? {} : { body });
  }
  patch(path: string, body: unknown) {
    return this.call("PATCH", path, { body });
  }
  delete(path: string) {
    return this.call("DELETE", path);
  }

  /** Every item of a paginated list, walking next_cursor; also returns the pages' sizes. */
  async all(path: string, limit: number): Promise<{ items: Record<string, unknown>[]; pages: number[]; statuses: number[] }> {
    const items: Record<string, unknown>[] = [];
    const pages: number[] = [];
    const statuses: number[] = [];
    let cursor: string | null = null;
    const sep = path.includes("?") ? "&" : "?";
    for (let i = 0; i < 1000; i++) {
      const res = await this.get(`${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      statuses.push(res.status);
      if (res.status !== 200) break;
      items.push(...res.json.items);
      pages.push(res.json.items.length);
      cursor = res.json.next_cursor;
      if (!cursor) break;
    }
    return { items, pages, statuses };
  }
}

/**
 * The email worker's delivery records (src/email/worker.ts): written in the
 * background whenever it sends a message queued by an earlier request, so
 * they are not what a request under test wrote.
 */
const deliveryEvents = { notIn: ["email.sent", "email.failed"] };

/**
 * Row counts of every table, OidcRecord by model: two equal snapshots around
 * a refused call prove that it wrote nothing (the audit log included, but for
 * the email worker's delivery records).
 */
export async function tableCounts(db: Database): Promise<Record<string, number>> {
  const { prisma } = db;
  const counts: Record<string, number> = {
    User: await prisma.user.count(),
    Client: await prisma.client.count(),
    ResourceServer: await prisma.resourceServer.count(),
    Passkey: await prisma.passkey.count(),
    WebAuthnChallenge: await prisma.webAuthnChallenge.count(),
    SigningKey: await prisma.signingKey.count(),
    AuditEvent: await prisma.auditEvent.count({ where: { type: deliveryEvents } }),
    EmailLinkToken: await prisma.emailLinkToken.count(),
  };
  for (const group of await prisma.oidcRecord.groupBy({ by: ["model"], _count: { _all: true } })) {
    counts[`OidcRecord(${group.model})`] = group._count._all;
  }
  return counts;
}

/** The highest audit sequence number so far (0 when the log is empty), the email worker's delivery records aside. */
export async function lastAuditSeq(db: Database): Promise<number> {
  return (await db.prisma.auditEvent.findFirst({ where: { type: deliveryEvents }, orderBy: { seq: "desc" }, select: { seq: true } }))?.seq ?? 0;
}

/** Audit events written after `seq`, oldest first, with their data parsed (the email worker's delivery records aside). */
export async function auditEventsAfter(db: Database, seq: number) {
  const rows = await db.prisma.auditEvent.findMany({ where: { seq: { gt: seq }, type: deliveryEvents }, orderBy: { seq: "asc" } });
  return rows.map((row) => ({ ...row, data: JSON.parse(row.data) as Record<string, unknown> }));
}

/** A body of `bytes` bytes that is valid JSON: {"name": "xxxx..."}. */
export function oversizedJson(bytes = 65 * 1024): string {
  return JSON.stringify({ name: "x".repeat(bytes) });
}

export interface SignedInUser {
  user: TestUser;
  client: TestClient;
  /** The browser (cookie jar) holding the user's session. */
  browser: Browser;
  tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
  accessToken: string;
  refreshToken: string | undefined;
  grantId: string;
  sessionId: string;
}

/**
 * A code flow for `user` (made when not given) with `client` (a first-party
 * client made when not given), signed in with the password form: the tokens,
 * and the ids of the Grant and Session rows they hang off.
 */
export async function signIn(
  running: RunningApp,
  options: { user?: TestUser; client?: TestClient; browser?: Browser; scope?: string } = {},
): Promise<SignedInUser> {
  const user = options.user ?? (await makeUser(running));
  const client = options.client ?? (await makeClient(running, { name: "Revocable app", firstParty: true }));
  const browser = options.browser ?? new Browser(running.url);
  const scope = options.scope ?? "openid email offline_access";
  const pending = await authorizationUrl(client, { scope, ...(scope.includes("offline_access") && { prompt: "consent" }) });
  const callback = await signInAndConsent(browser, pending, user);
  const tokens = await redeem(client, callback, pending);
  const { prisma } = running.db;
  // Token and session rows are keyed by the keyed hash of the token or cookie value.
  const storedIds = storedIdsFor(running.ring);
  const accessRow = await prisma.oidcRecord.findUnique({ where: { model_id: { model: "AccessToken", id: storedIds.of(tokens.access_token) } } });
  if (!accessRow?.grantId) throw new Error("the access token has no row with a grantId");
  // The session cookie holds the Session's id; its row is stored under the id's keyed hash.
  const sessionCookie = /(?:^|; )_session=([^;]+)/.exec(browser.jar.header(new URL("/", running.url)))?.[1];
  const session = sessionCookie ? await prisma.oidcRecord.findUnique({ where: { model_id: { model: "Session", id: storedIds.of(sessionCookie) } } }) : null;
  if (!session || session.accountId !== user.id) throw new Error("no session row for the signed-in user");
  return {
    user,
    client,
    browser,
    tokens,
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    grantId: accessRow.grantId,
    sessionId: session.id,
  };
}

/** Where the soft authenticator's passkeys are made: a WebAuthn RP ID must be a domain, not 127.0.0.1. */
const passkeyOrigin = "http://localhost:3000";

/**
 * Registers a passkey for `userId` through the same service as the account
 * page, with a software authenticator (a real WebAuthn registration
 * response): the row and its passkey.added audit event (actor: the user).
 */
export async function addPasskey(running: Pick<RunningApp, "db">, userId: string, name?: string): Promise<PasskeyView> {
  const rp = relyingPartyFor(passkeyOrigin);
  const user = await findUserById(running.db.prisma, userId);
  if (!user) throw new Error(`no user ${userId}`);
  const { challengeId, options } = await startPasskeyRegistration(running.db, rp, user);
  const response = new SoftAuthenticator(passkeyOrigin).register(options);
  return finishPasskeyRegistration(running.db, rp, user, { challengeId, response, ...(name && { name }) }, { ip: "127.0.0.1", userAgent: "gatehouse-admin-tests" });
}
