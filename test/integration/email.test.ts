/**
 * Email delivery end to end (docs/email.md): the app's worker sends what is
 * queued to a real SMTP server in this process (test/helpers/smtp.ts), and
 * the tests read what arrived, parsed by mailparser. Covers an account
 * notice from the /account page, an SMTP outage (queued, retried, delivered
 * once when the server is back), two instances on one database (each
 * message once), development files mode, and production without SMTP_URL.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import t, { type Test } from "tap";
import { simpleParser } from "mailparser";
import { queueEmail } from "../../src/email/outbox.ts";
import { insertEmail } from "../../src/db/email-outbox.ts";
import { setUserPassword } from "../../src/services/users.ts";
import { finishPasskeyRegistration, removePasskey, startPasskeyRegistration } from "../../src/services/passkeys.ts";
import { relyingPartyFor } from "../../src/auth/passkeys.ts";
import { findUserById } from "../../src/db/users.ts";
import { SoftAuthenticator } from "../helpers/soft-authenticator.ts";
import { loadConfig } from "../../src/config.ts";
import { systemActor } from "../../src/services/actor.ts";
import { startSmtpServer, type TestSmtpServer } from "../helpers/smtp.ts";
import type { Database } from "../../src/db/database.ts";
import { startCluster } from "../helpers/cluster.ts";
import { processDatabase, providers } from "../helpers/databases.ts";
import { startServer } from "../helpers/processes.ts";
import { Browser, buildTestApp, captureLogs, csrfToken, isSignInPage, last, makeUser, startApp, strongPassword } from "../helpers/http-flow.ts";

/** Waits until `check` returns a value (not undefined), or fails after `timeoutMs`. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const hrefsOf = (html: string) => [...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]!.replace(/&amp;/g, "&"));

t.test("changing the password on /account emails a notice over SMTP: text and HTML, escaped name, links on the issuer", async (t) => {
  const smtp = await startSmtpServer(t);
  const { logs, logger } = captureLogs("info");
  const running = await startApp(t, { env: { SMTP_URL: smtp.url, ISSUER_NAME: "Example ID", EMAIL_FROM: "Example ID <id@example.test>" }, logger });
  const user = await makeUser(running, { name: `Ada <b>"Lovelace"</b> & co` });

  const browser = new Browser(running.url);
  let page = last(await browser.follow("/account"));
  if (isSignInPage(page.body)) page = last(await browser.submit(page, { email: user.email, password: user.password }));
  t.equal(page.status, 200);
  const changed = await browser.request("/account/password", { form: { csrf: csrfToken(page.body), current_password: user.password, new_password: strongPassword() } });
  t.equal(changed.status, 303, "the password was changed");

  const mail = await smtp.waitFor((m) => m.to.includes(user.email));
  t.same(mail.to, [user.email], "sent to the user only");
  t.equal(mail.from, "id@example.test", "envelope sender from EMAIL_FROM");
  t.same(mail.parsed.from?.value, [{ address: "id@example.test", name: "Example ID" }], "From header from EMAIL_FROM");
  t.equal(mail.parsed.subject, "Your Example ID password was changed");
  t.equal(mail.parsed.headers.get("auto-submitted"), "auto-generated");
  t.match(mail.parsed.messageId, /^<[0-9a-f-]{36}@example\.test>$/);
  const text = mail.parsed.text ?? "";
  const html = typeof mail.parsed.html === "string" ? mail.parsed.html : "";
  t.ok(text.startsWith(`Hello Ada <b>"Lovelace"</b> & co,\n`), "the text part greets by name, as typed");
  t.match(text, /password of your Example ID account was just changed/);
  t.ok(html.includes("Hello Ada &lt;b&gt;&quot;Lovelace&quot;&lt;/b&gt; &amp; co,"), "the HTML part escapes the name");
  t.notMatch(html, /<b>"Lovelace"/, "no markup from the name");
  t.match(html, /password of your Example ID account was just changed/);
  const hrefs = hrefsOf(html);
  t.ok(hrefs.length > 0, "the HTML has links");
  for (const href of hrefs) t.ok(href.startsWith(`${running.url}/`) || href === running.url, `link on the issuer: ${href}`);
  t.ok(text.includes(`${running.url}/account`), "the text part has the account link");

  const row = await eventually("the row marked sent", async () => {
    const r = await running.db.prisma.emailOutbox.findFirst({ where: { to: user.email } });
    return r?.status === "sent" ? r : undefined;
  });
  t.match(row, { kind: "password-changed", userId: user.id, attempts: 1, lastError: null });
  t.ok(row.sentAt);
  const audit = await eventually("the email.sent audit event", async () => (await running.db.prisma.auditEvent.findFirst({ where: { type: "email.sent", userId: user.id } })) ?? undefined);
  t.same(JSON.parse(audit.data), { outbox_id: row.id, kind: "password-changed", attempts: 1 }, "the audit event names the message, not its content");
  t.notOk(logs.some((l) => JSON.stringify(l).includes(`${running.url}/account`)), "no link in the logs in smtp mode");
});

t.test("a link's token never reaches the log or the audit in smtp mode", async (t) => {
  const smtp = await startSmtpServer(t);
  const { logs, logger } = captureLogs("info");
  const running = await startApp(t, { env: { SMTP_URL: smtp.url }, logger });
  const token = "tok-" + "x".repeat(40);
  await queueEmail(running, { to: "reset@example.test", message: { kind: "password-reset", link: `${running.url}/password/reset/${token}` } });
  const mail = await smtp.waitFor((m) => m.to.includes("reset@example.test"));
  t.ok(mail.parsed.text?.includes(token), "the recipient gets the token");
  await eventually("the audit event", async () => (await running.db.prisma.auditEvent.findFirst({ where: { type: "email.sent" } })) ?? undefined);
  const audit = await running.db.prisma.auditEvent.findMany();
  t.notOk(JSON.stringify(audit).includes(token), "not in the audit log");
  t.notOk(JSON.stringify(audit).includes("reset@example.test"), "nor the address of a message to no user (a keyed hash instead)");
  t.ok(logs.length > 0, "the app did log");
  t.notOk(JSON.stringify(logs).includes(token), "not in the logs");
});

t.test("SMTP down: the message stays queued, then is delivered once when the server is back", async (t) => {
  const smtp = await startSmtpServer(t, { listen: false });
  const running = await startApp(t, { env: { SMTP_URL: smtp.url, EMAIL_RETRY_BASE: "1s" } });
  const user = await makeUser(running, { name: "Grace" });
  await setUserPassword(running.db, running.config.argon2, user.id, strongPassword(), systemActor, running.config);
  // A second message, failing on its own schedule: each retry timer must be kept.
  await sleep(300);
  await queueEmail(running, { to: "second@example.test", message: { kind: "mfa-disabled" } });

  const failed = await eventually("a failed attempt", async () => {
    const r = await running.db.prisma.emailOutbox.findFirst({ where: { userId: user.id } });
    return r && r.attempts >= 1 && r.status === "queued" ? r : undefined;
  });
  t.match(failed.lastError, /ECONNREFUSED|ESOCKET|ECONNECTION/, "the reason is kept");
  t.notMatch(failed.lastError ?? "", /smtp:\/\//, "without the SMTP URL");
  t.equal(smtp.messages.length, 0, "nothing arrived");

  await smtp.start();
  const mail = await smtp.waitFor((m) => m.to.includes(user.email), 15_000);
  t.equal(mail.parsed.subject, "Your Gatehouse password was changed");
  const row = await eventually("the row marked sent", async () => {
    const r = await running.db.prisma.emailOutbox.findFirst({ where: { userId: user.id } });
    return r?.status === "sent" ? r : undefined;
  });
  t.ok(row.attempts >= 2, `sent on attempt ${row.attempts}`);
  await smtp.waitFor((m) => m.to.includes("second@example.test"), 15_000);
  // Polls and retry timers keep running: nothing may send it again.
  await running.app.emailWorker!.runOnce();
  await sleep(2500);
  t.equal(smtp.messages.filter((m) => m.to.includes(user.email)).length, 1, "delivered exactly once");
  t.equal(smtp.messages.filter((m) => m.to.includes("second@example.test")).length, 1, "the second one too");
});

t.test("a message left sending by a crashed sender is sent once its lease expires; /metrics counts it", async (t) => {
  const smtp = await startSmtpServer(t);
  const running = await startApp(t, { env: { SMTP_URL: smtp.url } });
  const rendered = { subject: "left behind", text: "t", html: "<p>h</p>", kind: "mfa-enabled" };
  const past = new Date(Date.now() - 1000);
  await running.db.prisma.emailOutbox.createMany({
    data: [
      { id: "expired-lease", to: "crashed@example.test", ...rendered, status: "sending", attempts: 1, nextAttemptAt: past, lockedUntil: past },
      { id: "live-lease", to: "busy@example.test", ...rendered, status: "sending", attempts: 1, nextAttemptAt: past, lockedUntil: new Date(Date.now() + 60_000) },
    ],
  });
  await running.app.emailWorker!.runOnce();
  const mail = await smtp.waitFor((m) => m.to.includes("crashed@example.test"));
  t.equal(mail.parsed.subject, "left behind");
  t.match(await running.db.prisma.emailOutbox.findUnique({ where: { id: "expired-lease" } }), { status: "sent", attempts: 2 });
  t.match(await running.db.prisma.emailOutbox.findUnique({ where: { id: "live-lease" } }), { status: "sending", attempts: 1 }, "a live lease is left to its sender");
  t.notOk(smtp.messages.some((m) => m.to.includes("busy@example.test")));
  const metrics = await running.app.inject({ method: "GET", url: "/metrics" });
  t.match(metrics.body, /gatehouse_emails_total\{outcome="sent"\} 1\b/);
});

t.test("a recipient refused for good (550) is given up at once, with an email.failed audit event", async (t) => {
  const smtp = await startSmtpServer(t, { rejectRecipient: (address) => address.startsWith("nobody@") });
  const running = await startApp(t, { env: { SMTP_URL: smtp.url } });
  await queueEmail(running, { to: "nobody@example.test", message: { kind: "mfa-enabled" } });
  const row = await eventually("the row given up", async () => {
    const r = await running.db.prisma.emailOutbox.findFirst({ where: { to: "nobody@example.test" } });
    return r?.status === "failed" ? r : undefined;
  });
  t.equal(row.attempts, 1);
  t.match(row.lastError, /EENVELOPE 550/);
  const audit = await running.db.prisma.auditEvent.findFirst({ where: { type: "email.failed" } });
  t.match(JSON.parse(audit!.data), { outbox_id: row.id, kind: "mfa-enabled", attempts: 1 });
  t.notMatch(audit!.data, /nobody@example\.test/, "the audit event does not quote the address");
  t.equal(smtp.messages.length, 0);
});

t.test("adding a passkey notifies the owner, naming it", async (t) => {
  const smtp = await startSmtpServer(t);
  const running = await startApp(t, { env: { SMTP_URL: smtp.url } });
  const user = await makeUser(running, { name: "Kim" });
  const row = (await findUserById(running.db, user.id))!;
  const origin = "http://localhost:3000";
  const rp = relyingPartyFor(origin);
  const authenticator = new SoftAuthenticator(origin);
  const first = await startPasskeyRegistration(running.db, rp, row);
  const response = authenticator.register(first.options);
  await finishPasskeyRegistration(running.db, rp, row, { challengeId: first.challengeId, response, name: "Phone & <tablet>" }, { ip: "127.0.0.1", userAgent: "tests" }, running.config);
  const mail = await smtp.waitFor((m) => m.to.includes(user.email));
  t.equal(mail.parsed.subject, "A passkey was added to your Gatehouse account");
  t.match(mail.parsed.text, /A passkey named "Phone & <tablet>" was added/);
  t.match(String(mail.parsed.html), /&quot;Phone &amp; &lt;tablet&gt;&quot;/);

  t.equal(await running.db.prisma.emailOutbox.count({ where: { userId: user.id } }), 1, "one notice");
});

t.test("passkey removal by an operator notifies the owner", async (t) => {
  const smtp = await startSmtpServer(t);
  const running = await startApp(t, { env: { SMTP_URL: smtp.url } });
  const user = await makeUser(running, { name: "Lin" });
  const passkey = await running.db.prisma.passkey.create({
    data: { id: `pk-${user.id}`, userId: user.id, credentialId: Buffer.from(user.id), publicKey: Buffer.from("k"), counter: 0n, deviceType: "singleDevice", backedUp: false, transports: "[]", name: "Work <laptop>" },
  });
  await removePasskey(running.db, passkey.id, undefined, { actorType: "operator", actorId: "op" }, running.config);
  const mail = await smtp.waitFor((m) => m.to.includes(user.email));
  t.equal(mail.parsed.subject, "A passkey was removed from your Gatehouse account");
  t.match(mail.parsed.text, /The passkey named "Work <laptop>" was removed/);
  t.match(String(mail.parsed.html), /&quot;Work &lt;laptop&gt;&quot;/);
});

/** Queues `count` messages behind the workers' backs (as another process would) and checks each arrives once. */
async function sendsEachOnce(t: Test, db: Database, smtp: TestSmtpServer, label: string) {
  const count = 12;
  for (let i = 0; i < count; i++) {
    await insertEmail(db, { id: `m-${label}-${i}`, to: `r${i}@example.test`, userId: null, kind: "mfa-disabled", subject: `message ${i}`, text: "t", html: "<p>h</p>" });
  }
  await eventually("every message sent", async () => ((await db.prisma.emailOutbox.count({ where: { status: "sent" } })) === count ? true : undefined), 20_000);
  // Polls keep running on both instances: nothing may be sent again.
  await sleep(2500);
  const subjects = smtp.messages.map((m) => m.parsed.subject).sort();
  t.equal(subjects.length, count, "as many emails arrived as were queued");
  t.equal(new Set(subjects).size, count, "no message twice");
  t.equal(await db.prisma.auditEvent.count({ where: { type: "email.sent" } }), count, "one email.sent event each");
}

// providers() skips PostgreSQL without TEST_DATABASE_URL, and fails under CI.
if (providers(t).includes("postgresql")) t.test("postgresql: two instances on one database send each message once", async (t) => {
  const smtp = await startSmtpServer(t);
  // In-process instances, each with its own connection pool.
  const cluster = await startCluster(t, "postgresql", 2, { SMTP_URL: smtp.url, EMAIL_POLL_INTERVAL: "1s" });
  await sendsEachOnce(t, cluster.instances[0]!.db, smtp, "pg");
});

t.test("sqlite: two server processes on one file send each message once", async (t) => {
  // Processes, as SQLite instances are: in one process, two connections to
  // one file would wait on each other inside better-sqlite3's busy handler.
  const smtp = await startSmtpServer(t);
  const { database, env } = await processDatabase(t);
  const shared = { ...env, SMTP_URL: smtp.url, EMAIL_POLL_INTERVAL: "1s" };
  await startServer(t, shared);
  await startServer(t, shared);
  await sendsEachOnce(t, await database.open(), smtp, "sqlite");
});

t.test("files mode (no SMTP_URL outside production): an .eml file readable by its owner only, and the link logged", async (t) => {
  const { logs, logger } = captureLogs("info");
  const running = await startApp(t, { logger });
  t.equal(running.config.email.mode, "files");
  const link = `${running.url}/email/verify/dev-token-123`;
  await queueEmail(running, { to: "dev@example.test", recipientName: "Dev", message: { kind: "verify-email", link } });
  const dir = running.config.email.outboxDir;
  const file = await eventually("the .eml file", async () => readdirSync(dir).find((f) => f.endsWith(".eml")));
  const row = await eventually("the row marked sent", async () => {
    const r = await running.db.prisma.emailOutbox.findFirst({ where: { to: "dev@example.test" } });
    return r?.status === "sent" ? r : undefined;
  });
  t.equal(file, `${row.id}.eml`);
  t.equal(statSync(join(dir, file)).mode & 0o777, 0o600, "mode 0600");
  const parsed = await simpleParser(readFileSync(join(dir, file)));
  t.equal(parsed.subject, "Verify your email address for Gatehouse");
  t.same(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value.map((v) => v.address) : [], ["dev@example.test"]);
  t.ok(parsed.text?.includes(link) && String(parsed.html).includes(link), "both parts carry the link");
  const line = logs.find((l) => l.msg.startsWith("email written to a file"));
  t.ok(line, "one info line for the message");
  t.same(line?.links, [link], "with its link, so a developer can follow the flow");
  t.equal(line?.level, 30, "at info level");
});

t.test("production without SMTP_URL: email is off, with one warning at start-up", async (t) => {
  const config = loadConfig({ NODE_ENV: "production", COOKIE_SECRETS: "c".repeat(32), MASTER_KEYS: Buffer.alloc(32, 9).toString("base64") });
  t.equal(config.email.mode, "off");
  const { logs, logger } = captureLogs("warn");
  // The app itself, in production mode, on a test database (the master key comes from MASTER_KEYS).
  const built = await buildTestApp(t, { env: { NODE_ENV: "production", COOKIE_SECRETS: "c".repeat(32), MASTER_KEYS: Buffer.alloc(32, 9).toString("base64") }, logger });
  t.equal(built.config.email.mode, "off");
  t.equal(built.app.emailWorker, undefined, "no worker");
  const warnings = logs.filter((l) => /email is off/.test(l.msg));
  t.equal(warnings.length, 1, "one warning line");
  t.equal(warnings[0]?.level, 40);
  t.match(warnings[0]?.msg, /SMTP_URL/);
  await t.rejects(queueEmail(built, { to: "x@example.test", message: { kind: "password-changed" } }), { code: "forbidden" });
  // Optional notices are skipped, and the change itself goes through.
  const user = await makeUser(built, {});
  await setUserPassword(built.db, built.config.argon2, user.id, strongPassword(), systemActor, built.config);
  t.equal(await built.db.prisma.emailOutbox.count(), 0, "no notice queued");
});
