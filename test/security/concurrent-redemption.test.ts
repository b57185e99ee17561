/**
 * An authorization code and a rotating refresh token are single-use, also
 * under concurrency: N requests sent at once with one code or one refresh
 * token get exactly one set of tokens; the others are answered 400
 * invalid_grant, and the reuse revokes the grant as a sequential reuse does
 * (RFC 6749 section 4.1.2; OAuth 2.0 Security BCP, RFC 9700 section 4.14.2).
 */
import t, { type Test } from "tap";
import type { DatabaseProvider } from "../../src/db/database.ts";
import { providers } from "../helpers/databases.ts";
import {
  Browser,
  authorizationUrl,
  makeClient,
  makeUser,
  redirectUri,
  signInAndConsent,
  startApp,
  tokenRequest,
  type RunningApp,
  type TestClient,
  type TestUser,
} from "../helpers/http-flow.ts";

const parallel = 8;

/**
 * Holds every `find` of `model` until `parallel` of them have read the row
 * (or a second has passed), so that all requests see it unconsumed before any
 * of them consumes it: the race happens on every run and every database,
 * not only when the scheduler happens to interleave the requests.
 */
function holdFindsTogether(t: Test, running: RunningApp, model: "AuthorizationCode" | "RefreshToken"): void {
  const adapter = running.app.context.host.provider[model].adapter as { find(id: string): Promise<unknown> };
  const find = adapter.find;
  let arrived = 0;
  let release!: () => void;
  const together = new Promise<void>((resolve) => (release = resolve));
  const timer = setTimeout(release, 1000);
  adapter.find = async function (this: unknown, id: string) {
    const found = await find.call(this, id);
    if (++arrived === parallel) release();
    await together;
    return found;
  };
  t.teardown(() => {
    clearTimeout(timer);
    adapter.find = find;
  });
}

/** A fresh code for `user` at `client`, with its PKCE verifier. */
async function freshCode(running: RunningApp, client: TestClient, user: TestUser) {
  const pending = await authorizationUrl(client, { scope: "openid email offline_access", prompt: "consent" });
  const callback = await signInAndConsent(new Browser(running.url), pending, user);
  return { code: callback.searchParams.get("code")!, verifier: pending.codeVerifier };
}

type TokenResult = Awaited<ReturnType<typeof tokenRequest>>;

function tally(t: Test, results: TokenResult[]): TokenResult {
  const ok = results.filter((r) => r.status === 200);
  const refused = results.filter((r) => r.status !== 200);
  t.equal(ok.length, 1, `exactly one request succeeds (statuses: ${results.map((r) => r.status).join(", ")})`);
  t.equal(refused.length, parallel - 1);
  for (const r of refused) t.match(r, { status: 400, json: { error: "invalid_grant" } }, "the others: 400 invalid_grant");
  return ok[0]!;
}

async function raceSuite(t: Test, provider: DatabaseProvider): Promise<void> {
  const running = await startApp(t, { provider, env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
  const user = await makeUser(running);
  const client = await makeClient(running, { firstParty: true });

  t.test(`${parallel} parallel redemptions of one authorization code`, async (t) => {
    const { code, verifier } = await freshCode(running, client, user);
    const form = { grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: verifier };
    holdFindsTogether(t, running, "AuthorizationCode");
    const winner = tally(t, await Promise.all(Array.from({ length: parallel }, () => tokenRequest(running, client, form))));
    t.type(winner.json.access_token, "string", "the one success carries tokens");
    const after = await tokenRequest(running, client, { grant_type: "refresh_token", refresh_token: String(winner.json.refresh_token) });
    t.match(after, { status: 400, json: { error: "invalid_grant" } }, "the reuse revoked the grant: the winner's refresh token is dead too");
  });

  t.test(`${parallel} parallel refreshes with one refresh token`, async (t) => {
    // How many requests oidc-provider answered as a reuse: each is audited (events.ts).
    let reuses = 0;
    const onError = (_ctx: unknown, error: { error_detail?: string }) => {
      if (error.error_detail === "refresh token already used") reuses += 1;
    };
    running.app.context.host.provider.on("grant.error", onError);
    t.teardown(() => void running.app.context.host.provider.off("grant.error", onError));
    const { code, verifier } = await freshCode(running, client, user);
    const issued = await tokenRequest(running, client, { grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: verifier });
    t.equal(issued.status, 200);
    const form = { grant_type: "refresh_token", refresh_token: String(issued.json.refresh_token) };
    holdFindsTogether(t, running, "RefreshToken");
    const winner = tally(t, await Promise.all(Array.from({ length: parallel }, () => tokenRequest(running, client, form))));
    t.type(winner.json.refresh_token, "string", "the one success rotated the refresh token");
    const after = await tokenRequest(running, client, { grant_type: "refresh_token", refresh_token: String(winner.json.refresh_token) });
    t.match(after, { status: 400, json: { error: "invalid_grant" } }, "the reuse revoked the grant: the rotated refresh token is dead too");
    t.ok(reuses >= 1, `a lost race counts as a reuse of the refresh token (${reuses})`);
    // The audit rows are written after the responses: wait for them (also so
    // that none is still being written when the database is dropped).
    const audited = () => running.db.prisma.auditEvent.count({ where: { type: "refresh_token.reused" } });
    for (let i = 0; i < 100 && (await audited()) < reuses; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    t.equal(await audited(), reuses, "each reuse is audited as refresh_token.reused");
  });
}

for (const provider of providers(t)) {
  t.test(provider, async (t) => raceSuite(t, provider));
}
