/**
 * The audit log (README): every sign-in outcome, lockout, passkey
 * change, password change, revocation and admin change is recorded with the
 * right actor and subject; GET /admin/v1/audit filters and pages it newest
 * first; no event holds a password, a client secret or a token; and
 * `gatehouse audit verify` (the real CLI, on the same database) passes an
 * intact chain and names the first event of a tampered one.
 */
import t, { type Test } from "tap";
import * as oidc from "openid-client";
import type { DatabaseProvider } from "../../src/db/database.ts";
import { providers } from "../helpers/databases.ts";
import { runAuditVerify, runCli } from "../helpers/processes.ts";
import {
  Browser,
  authorizationUrl,
  csrfToken,
  last,
  makeClient,
  makeUser,
  startApp,
  strongPassword,
  uniqueEmail,
  type RunningApp,
  type TestClient,
} from "../helpers/http-flow.ts";
import { AdminApi, addPasskey, auditEventsAfter, lastAuditSeq, makeAdminClient, signIn, type AdminClient } from "../helpers/admin.ts";
import { createUser } from "../../src/services/users.ts";
import { hashAuditEmail } from "../../src/services/sign-in.ts";

type AuditEvents = Awaited<ReturnType<typeof auditEventsAfter>>;

const userAgent = "AuditTest/1.0 (+https://example.test/audit)";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One password attempt on the sign-in form of a fresh authorization request, with our own User-Agent. */
async function attemptSignIn(running: RunningApp, client: TestClient, email: string, password: string) {
  const browser = new Browser(running.url);
  const pending = await authorizationUrl(client, { scope: "openid email" });
  const page = last(await browser.follow(pending.url));
  const res = await browser.request(`${page.url.pathname}/login`, {
    form: { csrf: csrfToken(page.body), email, password },
    headers: { "user-agent": userAgent },
  });
  return res.status;
}

/** Runs `work` and returns the audit events it wrote, oldest first. */
async function eventsDuring(running: RunningApp, work: () => Promise<unknown>): Promise<AuditEvents> {
  const seq = await lastAuditSeq(running.db);
  await work();
  return auditEventsAfter(running.db, seq);
}

/** The one event of `type` in `events` (fails when there is not exactly one). */
function only(t: Test, events: AuditEvents, type: string) {
  const matching = events.filter((e) => e.type === type);
  t.equal(matching.length, 1, `one ${type} event (events: ${events.map((e) => e.type).join(", ") || "none"})`);
  return matching[0]!;
}

async function auditSuite(t: Test, provider: DatabaseProvider) {
  const running = await startApp(t, { provider, env: { SIGNIN_MAX_FAILURES_PER_IP: "1000" } });
  const { prisma } = running.db;
  /** Every secret the tests handle: none may appear in the audit log. */
  const secrets = new Set<string>();
  const keep = (...values: (string | undefined)[]) => values.forEach((v) => v && secrets.add(v));

  const admin: AdminClient = await makeAdminClient(running, "admin:read admin:write", "Audited admin");
  const revoker: AdminClient = await makeAdminClient(running, "admin:revoke", "Audited revoker");
  keep(admin.clientSecret, admin.token, revoker.clientSecret, revoker.token);
  const api = new AdminApi(running, admin.token);
  const revokeApi = new AdminApi(running, revoker.token);
  const app = await makeClient(running, { name: "Audited app", firstParty: true });
  keep(app.clientSecret);
  /** What every event an admin API call writes says about its actor. */
  const byAdmin = (client: AdminClient) => ({ actorType: "client", actorId: client.clientId, ip: "127.0.0.1", userAgent: "gatehouse-admin-tests" });

  t.test("sign-in outcomes: succeeded and failed, with the reason, the address and the user agent", async (t) => {
    const user = await makeUser(running);
    const wrong = `${user.password}x`;
    keep(user.password, wrong);

    const succeeded = only(t, await eventsDuring(running, async () => t.equal(await attemptSignIn(running, app, user.email, user.password), 303)), "sign_in.succeeded");
    t.match(succeeded, { actorType: "user", actorId: user.id, userId: user.id, clientId: app.clientId, ip: "127.0.0.1", userAgent, data: { method: "password" } });

    const failed = only(t, await eventsDuring(running, async () => t.equal(await attemptSignIn(running, app, user.email, wrong), 401)), "sign_in.failed");
    t.match(failed, { actorType: "user", actorId: user.id, userId: user.id, clientId: app.clientId, ip: "127.0.0.1", userAgent, data: { method: "password", reason: "wrong_password" } });

    const stranger = uniqueEmail("Nobody");
    const unknown = only(t, await eventsDuring(running, () => attemptSignIn(running, app, stranger, strongPassword())), "sign_in.failed");
    t.match(unknown, {
      userId: null,
      actorId: null,
      ip: "127.0.0.1",
      userAgent,
      data: { method: "password", reason: "unknown_email", email_hash: hashAuditEmail(running.ring.derive("audit-email"), stranger.toLowerCase()) },
    });
    t.equal(unknown.data.email, undefined, "the unknown email is stored as a keyed hash, never in clear (it may be a password)");

    const disabled = await makeUser(running);
    keep(disabled.password);
    await prisma.user.update({ where: { id: disabled.id }, data: { disabled: true } });
    const refused = only(t, await eventsDuring(running, () => attemptSignIn(running, app, disabled.email, disabled.password)), "sign_in.failed");
    t.match(refused, { userId: disabled.id, data: { reason: "disabled" } }, "a disabled account, even with the right password");

    const passkeyOnly = await createUser(running.db, running.config.argon2, { email: uniqueEmail("passkey-only") });
    const tried = strongPassword();
    keep(tried);
    const noPassword = only(t, await eventsDuring(running, () => attemptSignIn(running, app, passkeyOnly.email, tried)), "sign_in.failed");
    t.match(noPassword, { userId: passkeyOnly.id, data: { reason: "no_password" } });
  });

  t.test("sign_in.locked: once, when an account reaches the failure limit", async (t) => {
    const user = await makeUser(running);
    keep(user.password);
    const limit = running.config.signInMaxFailures;
    const events = await eventsDuring(running, async () => {
      for (let i = 0; i < limit; i++) {
        const wrong = `wrong-${i}-${user.password}`;
        keep(wrong);
        t.equal(await attemptSignIn(running, app, user.email, wrong), 401, `failure ${i + 1}`);
      }
      t.equal(await attemptSignIn(running, app, user.email, user.password), 429, "then locked, even with the right password");
    });
    t.equal(events.filter((e) => e.type === "sign_in.failed").length, limit, `${limit} failures recorded`);
    const locked = only(t, events, "sign_in.locked");
    t.match(locked, { actorType: "system", userId: user.id, ip: "127.0.0.1", userAgent, data: { failures: limit } });
    t.equal(locked.data.email, undefined, "a known user is named by id, not by email");
    t.ok(locked.seq > events.filter((e) => e.type === "sign_in.failed").at(-1)!.seq, "after the last failure");
    t.equal(events.filter((e) => e.type === "sign_in.succeeded").length, 0, "the locked attempt did not sign in");
  });

  t.test("passkey.added (by the user) and passkey.removed (by an admin)", async (t) => {
    const user = await makeUser(running);
    keep(user.password);
    let passkeyId = "";
    const added = only(t, await eventsDuring(running, async () => (passkeyId = (await addPasskey(running, user.id, "Work laptop")).id)), "passkey.added");
    t.match(added, { actorType: "user", actorId: user.id, userId: user.id, ip: "127.0.0.1", userAgent: "gatehouse-admin-tests", data: { passkey_id: passkeyId, name: "Work laptop" } });
    const removed = only(t, await eventsDuring(running, () => api.delete(`/admin/v1/passkeys/${passkeyId}`)), "passkey.removed");
    t.match(removed, { ...byAdmin(admin), userId: user.id, data: { passkey_id: passkeyId, name: "Work laptop" } });
  });

  t.test("user.created, user.updated, user.disabled, password.changed and user.deleted, by the admin client", async (t) => {
    const email = uniqueEmail("audited");
    const password = strongPassword();
    keep(password);
    let id = "";
    const created = only(t, await eventsDuring(running, async () => (id = (await api.post("/admin/v1/users", { email, password, role: "editor" })).json.id)), "user.created");
    t.match(created, { ...byAdmin(admin), userId: id, data: { email, role: "editor", with_password: true } });

    const updated = only(t, await eventsDuring(running, () => api.patch(`/admin/v1/users/${id}`, { name: "Audited Person" })), "user.updated");
    t.match(updated, { ...byAdmin(admin), userId: id, data: { changes: { name: "Audited Person" } } });

    const newPassword = strongPassword();
    keep(newPassword);
    const changed = only(t, await eventsDuring(running, () => api.post(`/admin/v1/users/${id}/password`, { password: newPassword })), "password.changed");
    t.match(changed, { ...byAdmin(admin), userId: id, data: { revoked: { grants: 0, sessions: 0 } } });

    const disabled = only(t, await eventsDuring(running, () => api.patch(`/admin/v1/users/${id}`, { disabled: true })), "user.disabled");
    t.match(disabled, { ...byAdmin(admin), userId: id, data: { changes: { disabled: true }, revoked: { grants: 0, sessions: 0 } } });

    const deleted = only(t, await eventsDuring(running, () => api.delete(`/admin/v1/users/${id}`)), "user.deleted");
    t.match(deleted, { ...byAdmin(admin), userId: id, data: { email } });
  });

  t.test("a user created with the CLI is audited with the operator as actor", async (t) => {
    const email = uniqueEmail("cli");
    const events = await eventsDuring(running, async () => {
      const res = await runCli(["users", "create", "--email", email], { DATABASE_URL: running.config.databaseUrl, KEYS_DIR: running.config.keysDir });
      t.equal(res.code, 0, res.stderr);
    });
    t.match(only(t, events, "user.created"), { actorType: "operator", actorId: "cli", data: { email, with_password: false } });
  });

  t.test("client.created, client.updated and client.deleted, by the admin client", async (t) => {
    let clientId = "";
    const created = only(
      t,
      await eventsDuring(running, async () => {
        const res = await api.post("/admin/v1/clients", { client_name: "Audited client", redirect_uris: ["https://audited.example/cb"], scope: "openid email" });
        clientId = res.json.client_id;
        keep(res.json.client_secret);
      }),
      "client.created",
    );
    t.match(created, { ...byAdmin(admin), clientId, userId: null, data: { client_name: "Audited client", grant_types: ["authorization_code", "refresh_token"], scope: "openid email" } });
    const updated = only(t, await eventsDuring(running, () => api.patch(`/admin/v1/clients/${clientId}`, { client_name: "Renamed client" })), "client.updated");
    t.match(updated, { ...byAdmin(admin), clientId });
    const deleted = only(t, await eventsDuring(running, () => api.delete(`/admin/v1/clients/${clientId}`)), "client.deleted");
    t.match(deleted, { ...byAdmin(admin), clientId, data: { client_name: "Renamed client", revoked: { grants: 0 } } });
  });

  t.test("revocations are audited with the revoking client, the user and the client they concern", async (t) => {
    const s = await signIn(running, { client: app });
    keep(s.user.password, s.accessToken, s.refreshToken, s.tokens.id_token);
    const grant = only(t, await eventsDuring(running, () => revokeApi.delete(`/admin/v1/grants/${s.grantId}`)), "grant.revoked");
    t.match(grant, { ...byAdmin(revoker), userId: s.user.id, clientId: app.clientId, data: { grant_id: s.grantId } });

    const again = await signIn(running, { client: app, user: s.user, browser: s.browser });
    keep(again.accessToken, again.refreshToken, again.tokens.id_token);
    const grants = only(t, await eventsDuring(running, () => revokeApi.delete(`/admin/v1/users/${s.user.id}/grants?client_id=${app.clientId}`)), "grants.revoked");
    t.match(grants, { ...byAdmin(revoker), userId: s.user.id, clientId: app.clientId, data: { grants: 1 } });

    const session = only(t, await eventsDuring(running, () => revokeApi.delete(`/admin/v1/sessions/${again.sessionId}`)), "session.revoked");
    t.match(session, { ...byAdmin(revoker), userId: s.user.id, data: { session_id: again.sessionId } });

    const other = await signIn(running, { client: app, user: s.user });
    keep(other.accessToken, other.refreshToken, other.tokens.id_token);
    const sessions = only(t, await eventsDuring(running, () => revokeApi.delete(`/admin/v1/users/${s.user.id}/sessions`)), "sessions.revoked");
    t.match(sessions, { ...byAdmin(revoker), userId: s.user.id, data: { sessions: 1, grants: 1, scope: "everywhere" } });

    const last = await signIn(running, { client: app, user: s.user });
    keep(last.accessToken, last.refreshToken, last.tokens.id_token);
    const cutoff = new Date(Date.now() + 1000).toISOString();
    const bulk = only(t, await eventsDuring(running, () => revokeApi.post("/admin/v1/revocations", { client_id: app.clientId, issued_before: cutoff })), "revocation.bulk");
    t.match(bulk, { ...byAdmin(revoker), userId: null, clientId: app.clientId, data: { issued_before: cutoff, revoked: { grants: 1, sessions: 0 } } });
  });

  t.test("a rotated-out refresh token presented again is audited as refresh_token.reused", async (t) => {
    const s = await signIn(running, { client: app });
    keep(s.user.password, s.accessToken, s.refreshToken, s.tokens.id_token);
    const rotated = await oidc.refreshTokenGrant(app.config, s.refreshToken!);
    keep(rotated.access_token, rotated.refresh_token, rotated.id_token);
    const seq = await lastAuditSeq(running.db);
    const reuse = await oidc.refreshTokenGrant(app.config, s.refreshToken!).then(
      () => undefined,
      (error: unknown) => error,
    );
    t.match(reuse, { error: "invalid_grant" }, "the old refresh token is refused");
    // The provider's event handler writes it after the response: wait for it.
    let events: AuditEvents = [];
    for (let i = 0; i < 50 && !events.some((e) => e.type === "refresh_token.reused"); i++) {
      await sleep(50);
      events = await auditEventsAfter(running.db, seq);
    }
    t.match(only(t, events, "refresh_token.reused"), { actorType: "client", actorId: app.clientId, clientId: app.clientId, userId: s.user.id, data: { grant_id: s.grantId, grant_revoked: true } });
  });

  t.test("GET /admin/v1/audit: newest first, a page at a time, filtered by user_id and type", async (t) => {
    const expected = async (where: { userId?: string; type?: string }) =>
      (await prisma.auditEvent.findMany({ where, orderBy: { seq: "desc" }, select: { seq: true } })).map((e) => e.seq);
    const walk = async (query: string, limit: number) => {
      const walked = await api.all(`/admin/v1/audit${query}`, limit);
      t.ok(walked.statuses.every((s) => s === 200), `${query || "(no filter)"}: every page answers 200`);
      t.ok(walked.pages.slice(0, -1).every((n) => n === limit), `${query || "(no filter)"}: full pages until the last`);
      return walked.items;
    };

    const all = await walk("", 7);
    t.same(
      all.map((e) => e.seq),
      await expected({}),
      "every event exactly once, newest first",
    );
    t.ok(all.length > 20, `(${all.length} events)`);
    t.same(Object.keys(all[0]!).sort(), ["actor_id", "actor_type", "client_id", "created_at", "data", "id", "ip", "seq", "type", "user_agent", "user_id"]);

    const locked = await prisma.auditEvent.findFirst({ where: { type: "sign_in.locked" } });
    const userId = locked!.userId!;
    const ofUser = await walk(`?user_id=${userId}`, 2);
    t.same(
      ofUser.map((e) => e.seq),
      await expected({ userId }),
      "?user_id=: that user's events, newest first",
    );
    t.ok(ofUser.every((e) => e.user_id === userId));

    const failures = await walk("?type=sign_in.failed", 3);
    t.same(
      failures.map((e) => e.seq),
      await expected({ type: "sign_in.failed" }),
      "?type=: that type's events, newest first",
    );
    t.ok(failures.length >= 8, `(${failures.length} failures)`);

    const both = await walk(`?user_id=${userId}&type=sign_in.failed`, 2);
    t.same(
      both.map((e) => e.seq),
      await expected({ userId, type: "sign_in.failed" }),
      "both filters together",
    );

    t.same((await api.get("/admin/v1/audit?user_id=no-such-user")).json, { items: [], next_cursor: null }, "an unknown user has no events");
    t.same((await api.get("/admin/v1/audit?type=no.such.type")).json, { items: [], next_cursor: null }, "an unknown type has none");
    t.equal((await revokeApi.get("/admin/v1/audit")).status, 403, "reading the log needs admin:read");
  });

  t.test("no event holds a password, a client secret or a token", async (t) => {
    t.ok(secrets.size > 20, `(${secrets.size} secrets handled by these tests)`);
    const rows = await prisma.auditEvent.findMany();
    const stored = JSON.stringify(rows);
    const listed = (await api.all("/admin/v1/audit", 200)).items;
    const served = JSON.stringify(listed);
    t.equal(listed.length, rows.length, "(the API lists them all)");
    for (const secret of secrets) {
      if (stored.includes(secret) || served.includes(secret)) t.fail(`a secret appears in the audit log: ${secret.slice(0, 6)}...`);
    }
    t.pass(`none of the ${secrets.size} secrets appear in ${rows.length} events`);
  });
}

const verify = (running: RunningApp) => runAuditVerify(running.config);

async function verifySuite(t: Test, provider: DatabaseProvider) {
  const running = await startApp(t, { provider });
  const { prisma } = running.db;
  const admin = await makeAdminClient(running, "admin:write");
  const api = new AdminApi(running, admin.token);
  for (let i = 0; i < 6; i++) await api.post("/admin/v1/users", { email: uniqueEmail("chain") });
  await signIn(running);
  const events = await prisma.auditEvent.findMany({ orderBy: { seq: "asc" } });
  t.ok(events.length >= 8, `a chain of ${events.length} events`);
  const middle = events[Math.floor(events.length / 2)]!;

  t.test("an intact chain verifies: exit 0", async (t) => {
    const res = await verify(running);
    t.equal(res.code, 0, res.stderr);
    t.same(res.json, { ok: true, events: events.length, head: { seq: events.at(-1)!.seq, hash: events.at(-1)!.hash } });
  });

  /** Alters one column of one event, expects verify to name it, then puts it back. */
  const tamper = (column: "data" | "type" | "actorId" | "userId" | "ip" | "createdAt", value: unknown, target = middle, where = "an event in the middle") =>
    t.test(`altering ${column} of ${where} is found: exit 1 naming that event`, async (t) => {
      const original = await prisma.auditEvent.findUniqueOrThrow({ where: { seq: target.seq } });
      await prisma.auditEvent.update({ where: { seq: target.seq }, data: { [column]: value } });
      const res = await verify(running);
      t.equal(res.code, 1, "exit 1");
      t.match(res.json, { ok: false, first_bad_event: { seq: target.seq, id: target.id, reason: /content does not match/ } }, "stdout names the event");
      t.match(res.stderr, `audit chain broken at event ${target.id} (seq ${target.seq})`, "and so does stderr");
      await prisma.auditEvent.update({ where: { seq: target.seq }, data: { [column]: original[column] } });
    });

  tamper("data", JSON.stringify({ email: "someone-else@example.test", role: "admin", with_password: false }));
  tamper("type", "user.updated");
  tamper("actorId", "another-client");
  tamper("userId", null);
  tamper("ip", "203.0.113.7");
  tamper("createdAt", new Date(middle.createdAt.getTime() - 60_000));
  tamper("data", "{}", events[0]!, "the first event");
  tamper("data", "{}", events.at(-1)!, "the latest event");

  t.test("every alteration put back, the chain verifies again", async (t) => {
    const res = await verify(running);
    t.equal(res.code, 0, res.stderr);
    t.same(res.json, { ok: true, events: events.length, head: { seq: events.at(-1)!.seq, hash: events.at(-1)!.hash } });
  });

  t.test("deleting an event in the middle is found: exit 1 naming the event after it", async (t) => {
    const victim = events[3]!;
    const next = events[4]!;
    await prisma.auditEvent.delete({ where: { seq: victim.seq } });
    const res = await verify(running);
    t.equal(res.code, 1, "exit 1");
    t.match(res.json, { ok: false, first_bad_event: { seq: next.seq, id: next.id, reason: /previous hash does not match/ } }, "the first event whose link is broken");
    t.match(res.stderr, `audit chain broken at event ${next.id} (seq ${next.seq})`);
  });
}

for (const provider of providers(t)) {
  t.test(`audit log on ${provider}`, (t) => auditSuite(t, provider));
  t.test(`gatehouse audit verify on ${provider}`, (t) => verifySuite(t, provider));
}
