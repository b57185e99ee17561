/**
 * How many SQL queries the token endpoint makes for one authorization_code
 * exchange and one refresh_token exchange (see docs/PERFORMANCE.md). The
 * counts are printed, grouped by table and operation, and held under a
 * ceiling so that a bad regression (a lookup per token, a lookup in a loop)
 * fails here instead of in production. The ceilings are deliberately loose:
 * tighten them as queries are cut.
 */
import t, { type Test } from "tap";
import type { DatabaseProvider } from "../../src/db/database.ts";
import { providers } from "../helpers/databases.ts";
import { Browser, authorizationUrl, formAction, csrfToken, isSignInPage, last, makeClient, makeUser, redirectUri, signInAndConsent, startApp, tokenRequest } from "../helpers/http-flow.ts";

/**
 * Statements per request, as measured (docs/PERFORMANCE.md): a regression
 * fails here. SQLite adds one, the read of the clients' cache version
 * (db/cache-versions.ts); PostgreSQL is notified of changes instead.
 */
function ceilingFor(provider: DatabaseProvider) {
  const version = provider === "sqlite" ? 1 : 0;
  return { authorizationCode: 5 + version, refreshToken: 5 + version, userinfo: 2 + version, introspection: 2 + version };
}

interface Query {
  sql: string;
  /** The oidc-provider model for OidcRecord queries, when a parameter names it. */
  model?: string;
}

/** "SELECT Client", "UPSERT OidcRecord(AccessToken)", "COMMIT", ... */
function describe(query: Query): string {
  const sql = query.sql.trim();
  const verb = /^\w+/.exec(sql)?.[0]?.toUpperCase() ?? "?";
  const table = /(?:\bFROM|\bINTO|^UPDATE)\s+(?:[`"]\w+[`"]\.)?[`"]?(\w+)/i.exec(sql)?.[1];
  const operation = verb === "INSERT" && /ON CONFLICT/i.test(sql) ? "UPSERT" : verb;
  if (!table) return operation;
  return `${operation} ${table}${query.model ? `(${query.model})` : ""}`;
}

function summarise(list: Query[]): string {
  const groups = new Map<string, number>();
  for (const q of list) groups.set(describe(q), (groups.get(describe(q)) ?? 0) + 1);
  return [...groups].map(([what, n]) => `${n} x ${what}`).join(", ");
}

const count = (list: Query[], pattern: RegExp) => list.filter((q) => pattern.test(describe(q))).length;

const models = new Set(["Session", "Interaction", "Grant", "AuthorizationCode", "AccessToken", "RefreshToken", "ClientCredentials", "ReplayDetection", "PushedAuthorizationRequest"]);

/** The oidc-provider models a statement's parameters name: "RefreshToken", or "tokens + Grant" for the combined lookup. */
function modelsNamed(sql: string, args: readonly unknown[]): string | undefined {
  if (/LEFT JOIN/i.test(sql)) return "token + its Grant";
  return args.find((p): p is string => typeof p === "string" && models.has(p));
}

async function querySuite(t: Test, provider: DatabaseProvider): Promise<void> {
  const ceiling = ceilingFor(provider);
  const queries: Query[] = [];
  // Every statement sent to the database, transaction control included; the
  // parameters say which oidc-provider model an OidcRecord query is about.
  const running = await startApp(t, {
    provider,
    open: {
      onQuery: (sql, args) =>
        queries.push({ sql, ...(sql.includes("OidcRecord") && { model: modelsNamed(sql, args) }) }),
    },
  });
  // The key set watcher polls the database on a timer (jobs/key-set.ts): a
  // poll landing inside a measured request would be counted as its own.
  await running.app.keySetWatcher.stop();

  /** Runs `request` with the counter reset just before it, and reads it right after the response. */
  async function measure<T>(t: Test, label: string, request: () => Promise<T>): Promise<{ result: T; during: Query[] }> {
    queries.length = 0;
    const result = await request();
    const during = queries.splice(0);
    // Anything that arrives after the response was left running by the request.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const after = queries.splice(0);
    t.comment(`${provider} ${label}: ${during.length} queries: ${summarise(during)}`);
    for (const [i, q] of during.entries()) t.comment(`  ${i + 1}. ${describe(q)}: ${q.sql.slice(0, 160)}`);
    if (after.length) t.comment(`${provider} ${label}: ${after.length} more after the response: ${summarise(after)}`);
    return { result, during };
  }

  const user = await makeUser(running);
  const client = await makeClient(running, { name: "Query Counter", scope: "openid email offline_access" });
  const pending = await authorizationUrl(client, { scope: "openid email offline_access", prompt: "consent" });
  const callback = await signInAndConsent(new Browser(running.url), pending, user);

  const exchange = await measure(t, "authorization_code", () =>
    tokenRequest(running, client, {
      grant_type: "authorization_code",
      code: callback.searchParams.get("code")!,
      redirect_uri: redirectUri,
      code_verifier: pending.codeVerifier,
    }),
  );
  t.equal(exchange.result.status, 200, `the code exchange succeeds ${String(exchange.result.json.error ?? "")}`);
  t.type(exchange.result.json.id_token, "string", "with an ID token");
  t.type(exchange.result.json.refresh_token, "string", "and a refresh token (offline_access, prompt=consent)");
  t.ok(exchange.during.length > 0, "the counter sees the queries");
  t.ok(exchange.during.length <= ceiling.authorizationCode, `authorization_code: ${exchange.during.length} queries, at most ${ceiling.authorizationCode}`);
  t.ok(count(exchange.during, /^SELECT Client/) <= 1, "the client is read at most once");
  t.ok(count(exchange.during, /^SELECT User/) <= 1, "the user (claims) at most once");

  const refresh = await measure(t, "refresh_token", () =>
    tokenRequest(running, client, { grant_type: "refresh_token", refresh_token: String(exchange.result.json.refresh_token) }),
  );
  t.equal(refresh.result.status, 200, `the refresh succeeds ${String(refresh.result.json.error ?? "")}`);
  t.type(refresh.result.json.refresh_token, "string", "and rotates the refresh token");
  t.not(refresh.result.json.refresh_token, exchange.result.json.refresh_token);
  t.ok(refresh.during.length <= ceiling.refreshToken, `refresh_token: ${refresh.during.length} queries, at most ${ceiling.refreshToken}`);
  t.ok(count(refresh.during, /^SELECT Client/) <= 1, "the client is read at most once");
  t.ok(count(refresh.during, /^SELECT User/) <= 1, "the user (claims) at most once");

  // The two endpoints resource servers call.
  const accessToken = String(refresh.result.json.access_token);
  const userinfo = await measure(t, "userinfo", () => fetch(`${running.url}/me`, { headers: { authorization: `Bearer ${accessToken}` } }).then((r) => r.text()));
  t.ok(userinfo.during.length <= ceiling.userinfo, `userinfo: ${userinfo.during.length} queries, at most ${ceiling.userinfo}`);
  const introspection = await measure(t, "introspection", () =>
    fetch(`${running.url}/token/introspection`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ token: accessToken }),
    }).then((r) => r.text()),
  );
  t.ok(
    introspection.during.length <= ceiling.introspection,
    `introspection without token_type_hint: ${introspection.during.length} queries, at most ${ceiling.introspection}`,
  );
}

for (const provider of providers(t)) {
  t.test(`queries per token request on ${provider} (authorization_code, then refresh_token)`, (t) => querySuite(t, provider));
}

/**
 * The sign-in POST decides whether a second factor is due and audits the
 * outcome from one read of the user's authenticator app
 * (interaction/second-factor.ts), not one read for each.
 */
t.test("the password sign-in reads the user's authenticator app once", async (t) => {
  const queries: string[] = [];
  const running = await startApp(t, { open: { onQuery: (sql) => queries.push(sql) } });
  const user = await makeUser(running);
  const client = await makeClient(running, { name: "Sign-in Query Counter" });
  const browser = new Browser(running.url);
  const page = last(await browser.follow((await authorizationUrl(client)).url));
  t.ok(isSignInPage(page.body), "the sign-in page is shown");
  queries.length = 0;
  const answer = await browser.request(formAction(page.body), { form: { csrf: csrfToken(page.body), email: user.email, password: user.password } });
  t.equal(answer.status, 303, "the right password is accepted");
  t.equal(queries.filter((sql) => sql.includes("UserTotp")).length, 1, "UserTotp is read once");
});
