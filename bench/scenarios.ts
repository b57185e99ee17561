/**
 * The benchmark's scenarios, each an iteration one virtual user repeats
 * against a server (Gatehouse or the baseline): discovery, JWKS,
 * client_credentials, introspection, userinfo, refresh rotation (every user
 * keeps its own chain), the code exchange alone (codes prepared before the
 * run) and the authorization code flow over HTTP without a browser. An
 * iteration throws when the server did not answer as expected.
 */
import { createHash, randomBytes } from "node:crypto";
import { Connection, userDone, type HttpResponse } from "./load.ts";
import { benchScope, benchSessionScope, redirectUri, type RunningServer } from "./servers.ts";

export interface Endpoints {
  discovery: string;
  jwks: string;
  authorization: string;
  token: string;
  introspection: string;
  userinfo: string;
}

/** An authorization code and the PKCE verifier it was requested with. */
interface PreparedCode {
  code: string;
  verifier: string;
}

/**
 * A virtual user: its connection, its own tokens and session (from its own
 * code flow), and the codes prepared for its next code_exchange run.
 */
export interface VirtualUser {
  server: RunningServer;
  endpoints: Endpoints;
  conn: Connection;
  accessToken: string;
  refreshToken: string;
  session: Jar;
  codes: PreparedCode[];
}

export type ScenarioName = "discovery" | "jwks" | "client_credentials" | "introspection" | "userinfo" | "refresh" | "code_exchange" | "code_flow";

export const scenarioNames: readonly ScenarioName[] = [
  "discovery",
  "jwks",
  "client_credentials",
  "introspection",
  "userinfo",
  "refresh",
  "code_exchange",
  "code_flow",
];

/** Scenarios whose iteration is several HTTP requests (reported per flow, not per request). */
export const multiRequest: ReadonlySet<ScenarioName> = new Set(["code_flow"]);

function fail(what: string, res: HttpResponse): never {
  throw new Error(`${what}: HTTP ${res.status} ${res.body.slice(0, 200)}`);
}

function basic(server: RunningServer): string {
  const { clientId, clientSecret } = server.client;
  // RFC 6749 section 2.3.1: form-urlencode the id and secret before Base64.
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString("base64")}`;
}

function postForm(vu: Pick<VirtualUser, "conn" | "server">, url: string, form: Record<string, string>): Promise<HttpResponse> {
  return vu.conn.send(url, {
    method: "POST",
    headers: { authorization: basic(vu.server), "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
}

/** The endpoints a server's discovery document names (OpenID Connect Discovery 1.0, section 3). */
export async function discoverEndpoints(server: RunningServer): Promise<Endpoints> {
  const discovery = `${server.url}/.well-known/openid-configuration`;
  const doc = (await (await fetch(discovery)).json()) as Record<string, string>;
  return {
    discovery,
    jwks: doc.jwks_uri!,
    authorization: doc.authorization_endpoint!,
    token: doc.token_endpoint!,
    introspection: doc.introspection_endpoint!,
    userinfo: doc.userinfo_endpoint!,
  };
}

/** Cookies of one flow, with RFC 6265 path matching (enough for one host). */
class Jar {
  #cookies = new Map<string, { value: string; path: string }>();

  store(url: URL, setCookie: string | string[] | undefined): void {
    for (const line of Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []) {
      const [pair, ...attributes] = line.split(";").map((s) => s.trim());
      const eq = pair!.indexOf("=");
      const name = pair!.slice(0, eq);
      let path = url.pathname.slice(0, Math.max(1, url.pathname.lastIndexOf("/")));
      let expired = false;
      for (const attribute of attributes) {
        const [k, ...v] = attribute.split("=");
        const key = k!.toLowerCase();
        if (key === "path") path = v.join("=");
        else if (key === "expires" && Date.parse(v.join("=")) <= Date.now()) expired = true;
        else if (key === "max-age" && Number(v.join("=")) <= 0) expired = true;
      }
      const id = `${name}\0${path}`;
      if (expired) this.#cookies.delete(id);
      else this.#cookies.set(id, { value: pair!.slice(eq + 1), path });
    }
  }

  header(url: URL): string {
    const out: string[] = [];
    for (const [id, c] of this.#cookies) {
      const p = url.pathname;
      if (p === c.path || (p.startsWith(c.path) && (c.path.endsWith("/") || p[c.path.length] === "/"))) out.push(`${id.split("\0")[0]}=${c.value}`);
    }
    return out.join("; ");
  }
}

/**
 * An authorization request (OpenID Connect Core 1.0, section 3.1.2.1) with
 * PKCE S256 (RFC 7636). `prompt=consent` with offline_access asks for a
 * refresh token (section 11); without it the request is answered from the
 * session and the grant it already has.
 */
function authorizationRequest(vu: Pick<VirtualUser, "server" | "endpoints">, { consent }: { consent: boolean }): { url: URL; verifier: string } {
  const verifier = randomBytes(32).toString("base64url");
  const url = new URL(vu.endpoints.authorization);
  url.search = new URLSearchParams({
    client_id: vu.server.client.clientId,
    redirect_uri: redirectUri,
    response_type: "code",
    scope: consent ? benchScope : benchSessionScope,
    ...(consent ? { prompt: "consent" } : {}),
    state: randomBytes(12).toString("base64url"),
    nonce: randomBytes(12).toString("base64url"),
    code_challenge: createHash("sha256").update(verifier).digest("base64url"),
    code_challenge_method: "S256",
  }).toString();
  return { url, verifier };
}

/** The code of a redirect to the client's redirect_uri, or undefined for any other answer. */
function codeOf(url: URL, res: HttpResponse): string | undefined {
  const location = res.headers.location;
  if (res.status < 300 || res.status >= 400 || typeof location !== "string") return undefined;
  const next = new URL(location, url);
  if (!next.href.startsWith(`${redirectUri}?`)) return undefined;
  const code = next.searchParams.get("code");
  if (!code) throw new Error(`no code in ${next.href}`);
  return code;
}

/** The code exchange (RFC 6749 section 4.1.3, RFC 7636 section 4.5): the token response, which must hold an ID token. */
async function exchangeCode(vu: Pick<VirtualUser, "conn" | "server" | "endpoints">, { code, verifier }: PreparedCode) {
  const res = await postForm(vu, vu.endpoints.token, { grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: verifier });
  if (res.status !== 200) fail("code exchange", res);
  const tokens = JSON.parse(res.body) as { access_token: string; id_token?: string; refresh_token?: string };
  if (!tokens.id_token) throw new Error("the code exchange issued no ID token");
  return tokens;
}

/**
 * One authorization code flow (OpenID Connect Core 1.0, section 3.1):
 * authorization request with `prompt=consent`, the sign-in form with its
 * CSRF token, the consent form, and the code exchange. Follows redirects
 * within the issuer and stops at the redirect to the client's redirect_uri.
 * The baseline's interaction finishes without pages. The session's cookies
 * end in `jar`.
 */
export async function runCodeFlow(vu: Pick<VirtualUser, "conn" | "server" | "endpoints">, jar = new Jar()): Promise<{ access_token: string; refresh_token: string }> {
  const { url: authorize, verifier } = authorizationRequest(vu, { consent: true });
  let url = authorize;
  let init: { method?: string; form?: Record<string, string> } = {};
  let code: string | undefined;
  for (let hop = 0; hop < 15 && code === undefined; hop++) {
    const headers: Record<string, string> = {};
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    if (init.form) headers["content-type"] = "application/x-www-form-urlencoded";
    const res = await vu.conn.send(url, { method: init.method ?? "GET", headers, body: init.form ? new URLSearchParams(init.form).toString() : undefined });
    jar.store(url, res.headers["set-cookie"]);
    code = codeOf(url, res);
    if (code !== undefined) break;
    const location = res.headers.location;
    if (res.status >= 300 && res.status < 400 && typeof location === "string") {
      url = new URL(location, url);
      init = {};
      continue;
    }
    if (res.status !== 200) fail(`${url.pathname}`, res);
    const csrf = /name="csrf" value="([^"]+)"/.exec(res.body)?.[1];
    const action = /<form method="post" action="([^"]+)"/.exec(res.body)?.[1]?.replace(/&amp;/g, "&");
    if (!csrf || !action) fail(`${url.pathname}: no form`, res);
    url = new URL(action, url);
    if (res.body.includes('id="sign-in-form"')) {
      if (!vu.server.user) throw new Error("a sign-in page, but no user to sign in");
      init = { method: "POST", form: { csrf, email: vu.server.user.email, password: vu.server.user.password } };
    } else if (res.body.includes('name="decision" value="allow"')) {
      init = { method: "POST", form: { csrf, decision: "allow" } };
    } else {
      fail(`${url.pathname}: an unknown page`, res);
    }
  }
  if (code === undefined) throw new Error("the flow did not reach the redirect_uri");
  const tokens = await exchangeCode(vu, { code, verifier });
  if (!tokens.refresh_token) throw new Error("the code exchange issued no refresh token");
  return { access_token: tokens.access_token, refresh_token: tokens.refresh_token };
}

/**
 * Fills `vu.codes` with `count` fresh codes for code_exchange, each from an
 * authorization request that the user's session and grant answer at once
 * (one request, no pages). Not timed: a run then measures exchanges alone.
 */
export async function prepareCodes(vu: VirtualUser, count: number): Promise<void> {
  vu.codes = [];
  for (let i = 0; i < count; i++) {
    const { url, verifier } = authorizationRequest(vu, { consent: false });
    const res = await vu.conn.send(url, { headers: { cookie: vu.session.header(url) } });
    const code = codeOf(url, res);
    if (code === undefined) fail("an authorization request answered from the session", res);
    vu.codes.push({ code, verifier });
  }
}

/**
 * Code exchanges a second that code_exchange prepares codes for in a
 * server's first run: above what either server reaches on this kind of
 * machine (each exchange signs an ID token). Later runs prepare half as many
 * again as the server's previous run exchanged a second.
 */
const exchangesPerSecondCeiling = 3000;

/**
 * Work a scenario needs done before each timed run, not timed: for
 * code_exchange, enough codes for the run (`previousPerSecond`: the rate of
 * this server's previous run of the scenario, if any).
 */
export async function prepareRun(
  scenario: ScenarioName,
  users: VirtualUser[],
  { durationMs, maxRequests }: { durationMs: number; maxRequests: number },
  previousPerSecond?: number,
): Promise<void> {
  if (scenario !== "code_exchange") return;
  const perSecond = previousPerSecond ? previousPerSecond * 1.5 : exchangesPerSecondCeiling;
  const total = Math.min(maxRequests, Math.ceil((durationMs / 1000) * perSecond));
  const perUser = Math.ceil(total / users.length);
  await Promise.all(users.map((vu) => prepareCodes(vu, perUser)));
}

/** A virtual user with its own connection, session and grant (from one code flow). */
export async function createVirtualUser(server: RunningServer, endpoints: Endpoints): Promise<VirtualUser> {
  const conn = new Connection();
  const session = new Jar();
  const tokens = await runCodeFlow({ conn, server, endpoints }, session);
  return { server, endpoints, conn, accessToken: tokens.access_token, refreshToken: tokens.refresh_token, session, codes: [] };
}

/**
 * One iteration of `scenario` for `vu`; throws unless the server answered as
 * expected. Returns `userDone` when the user has nothing left to do in this
 * run (code_exchange: no prepared code left).
 */
export async function iterate(scenario: ScenarioName, vu: VirtualUser): Promise<void | typeof userDone> {
  switch (scenario) {
    case "discovery": {
      const res = await vu.conn.send(vu.endpoints.discovery);
      if (res.status !== 200) fail("discovery", res);
      return;
    }
    case "jwks": {
      const res = await vu.conn.send(vu.endpoints.jwks);
      if (res.status !== 200) fail("jwks", res);
      return;
    }
    case "client_credentials": {
      // RFC 6749 section 4.4.
      const res = await postForm(vu, vu.endpoints.token, { grant_type: "client_credentials" });
      if (res.status !== 200) fail("client_credentials", res);
      return;
    }
    case "introspection": {
      // RFC 7662 section 2.1; the token is the user's own, issued to the same client.
      const res = await postForm(vu, vu.endpoints.introspection, { token: vu.accessToken });
      if (res.status !== 200 || !(JSON.parse(res.body) as { active?: boolean }).active) fail("introspection", res);
      return;
    }
    case "userinfo": {
      // OpenID Connect Core 1.0, section 5.3.
      const res = await vu.conn.send(vu.endpoints.userinfo, { headers: { authorization: `Bearer ${vu.accessToken}` } });
      if (res.status !== 200) fail("userinfo", res);
      return;
    }
    case "refresh": {
      // RFC 6749 section 6, with rotation: each answer carries the next refresh token of this user's chain.
      const res = await postForm(vu, vu.endpoints.token, { grant_type: "refresh_token", refresh_token: vu.refreshToken });
      if (res.status !== 200) fail("refresh", res);
      const tokens = JSON.parse(res.body) as { access_token: string; refresh_token?: string };
      if (!tokens.refresh_token) throw new Error("refresh: no rotated refresh token");
      vu.refreshToken = tokens.refresh_token;
      vu.accessToken = tokens.access_token;
      return;
    }
    case "code_exchange": {
      // RFC 6749 section 4.1.3, with a code prepared before the run.
      // Oldest first: a code lives 60 s, and none waits longer than the run.
      const prepared = vu.codes.shift();
      if (!prepared) return userDone;
      await exchangeCode(vu, prepared);
      return;
    }
    case "code_flow": {
      await runCodeFlow(vu);
      return;
    }
  }
}
