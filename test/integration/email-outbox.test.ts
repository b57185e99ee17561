/**
 * Queueing email (src/email/outbox.ts, src/db/email-outbox.ts) on every
 * database provider: a rendered row, committed with the caller's change or
 * not at all, and claimed by exactly one sender.
 */
import t from "tap";
import { queueEmail, emailEnabled } from "../../src/email/outbox.ts";
import { claimDueEmails, markEmailRetry, markEmailSent } from "../../src/db/email-outbox.ts";
import { transaction } from "../../src/db/transaction.ts";
import { createTestDatabase, providers } from "../helpers/databases.ts";
import { testConfig } from "../helpers/config.ts";

for (const provider of providers(t)) {
  t.test(provider, async (t) => {
    const database = await createTestDatabase(t, provider);
    const db = await database.open();
    const config = testConfig(t, { ISSUER: "https://id.example.com", TRUST_PROXY: "true", ISSUER_NAME: "Example ID" });

    t.test("queueEmail inserts one rendered, queued row", async (t) => {
      const link = "https://id.example.com/password/reset/tok-1";
      await queueEmail({ db, config }, { to: "ada@example.com", userId: "u-1", recipientName: "Ada <3", message: { kind: "password-reset", link } });
      const rows = await db.prisma.emailOutbox.findMany({ where: { to: "ada@example.com" } });
      t.equal(rows.length, 1);
      const row = rows[0]!;
      t.match(row, { userId: "u-1", kind: "password-reset", status: "queued", attempts: 0, lockedUntil: null, lastError: null, sentAt: null });
      t.match(row.subject, /Example ID/);
      t.ok(row.text.includes(link) && row.html.includes(link));
      t.ok(row.html.includes("Hello Ada &lt;3,"));
      t.ok(row.nextAttemptAt.getTime() <= Date.now());
    });

    t.test("inside a transaction, the row is committed with the change or not at all", async (t) => {
      await transaction(db, (tx) => queueEmail({ db, config }, { to: "kept@example.com", message: { kind: "password-changed" } }, tx));
      await t.rejects(
        transaction(db, async (tx) => {
          await queueEmail({ db, config }, { to: "dropped@example.com", message: { kind: "password-changed" } }, tx);
          throw new Error("the change failed");
        }),
        /the change failed/,
      );
      t.equal(await db.prisma.emailOutbox.count({ where: { to: "kept@example.com" } }), 1);
      t.equal(await db.prisma.emailOutbox.count({ where: { to: "dropped@example.com" } }), 0);
    });

    t.test("a link off the issuer, or a bad address, queues nothing", async (t) => {
      const before = await db.prisma.emailOutbox.count();
      await t.rejects(queueEmail({ db, config }, { to: "x@example.com", message: { kind: "verify-email", link: "https://evil.example/v/1" } }), /issuer's origin/);
      await t.rejects(queueEmail({ db, config }, { to: "x@example.com\r\nBcc: y@example.com", message: { kind: "password-changed" } }), { code: "invalid_request" });
      t.equal(await db.prisma.emailOutbox.count(), before);
    });

    t.test("with email off (production without SMTP_URL), queueEmail refuses", async (t) => {
      const off = { ...config, email: { ...config.email, mode: "off" as const } };
      t.equal(emailEnabled(off), false);
      t.equal(emailEnabled(config), true);
      await t.rejects(queueEmail({ db, config: off }, { to: "x@example.com", message: { kind: "password-changed" } }), { code: "forbidden", message: /SMTP_URL/ });
    });

    t.test("two concurrent claims never take the same row; a lost claim cannot mark it", async (t) => {
      await db.prisma.emailOutbox.deleteMany({});
      for (let i = 0; i < 6; i++) await queueEmail({ db, config }, { to: `c${i}@example.com`, message: { kind: "mfa-enabled" } });
      // PostgreSQL: a second connection pool, as another instance has. SQLite:
      // the same connection, whose statements the two claims take in turns (a
      // second connection in one process would block its event loop in
      // better-sqlite3's busy wait; instances are processes).
      const other = provider === "postgresql" ? await database.open() : db;
      const [a, b] = await Promise.all([claimDueEmails(db, { limit: 10, leaseMs: 60_000 }), claimDueEmails(other, { limit: 10, leaseMs: 60_000 })]);
      const ids = [...a, ...b].map((r) => r.id);
      t.equal(ids.length, 6, "every row claimed");
      t.equal(new Set(ids).size, 6, "none claimed twice");
      t.same(await claimDueEmails(db, { limit: 10, leaseMs: 60_000 }), [], "nothing left while the leases hold");

      // The lease of the first row expires: another sender takes it (attempt 2).
      const first = [...a, ...b][0]!;
      await db.prisma.emailOutbox.update({ where: { id: first.id }, data: { lockedUntil: new Date(Date.now() - 1000) } });
      const [again] = await claimDueEmails(other, { limit: 10, leaseMs: 60_000 });
      t.equal(again?.id, first.id);
      t.equal(again?.attempts, 2);
      t.equal(await markEmailSent(db, { id: first.id, attempts: 1 }), false, "the first sender lost its claim");
      t.equal(await markEmailRetry(db, { id: first.id, attempts: 1 }, new Date(), "x"), false);
      t.equal(await markEmailSent(other, { id: first.id, attempts: 2 }), true);
      t.match(await db.prisma.emailOutbox.findUnique({ where: { id: first.id } }), { status: "sent", attempts: 2 });
    });
  });
}
