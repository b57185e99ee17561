/**
 * The scheduled sweep of expired oidc-provider rows (src/jobs/sweeper.ts),
 * against every database provider. Which rows a sweep deletes is covered by
 * adapter.test.ts; this covers the schedule, the return value and the logging.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import t, { type Test } from "tap";
import type { FastifyBaseLogger } from "fastify";
import { emailRetentionMs, startSweeper } from "../../src/jobs/sweeper.ts";
import { createAdapterFactory } from "../../src/oidc/adapter.ts";
import { createClientStore } from "../../src/oidc/client-store.ts";
import { createMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { storedIdsFor } from "../../src/crypto/stored-ids.ts";
import type { Database, DatabaseProvider } from "../../src/db/database.ts";
import { createTestDatabase, providers } from "../helpers/databases.ts";

interface LogLine {
  level: "info" | "error";
  fields: Record<string, unknown>;
  message: string;
}

/** A logger that records what the sweeper says. */
function recordingLogger(): { log: FastifyBaseLogger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const record = (level: LogLine["level"]) => (fields: Record<string, unknown>, message: string) => {
    lines.push({ level, fields, message });
  };
  const log = { info: record("info"), error: record("error") } as unknown as FastifyBaseLogger;
  return { log, lines };
}

/** Adds `count` AccessToken rows whose expiry has already passed; returns their stored ids. */
async function addExpiredTokens(db: Database, count: number): Promise<string[]> {
  const ring = createMasterKeyRing([randomBytes(32)]);
  const storedIds = storedIdsFor(ring);
  const adapter = createAdapterFactory(db, createClientStore(db, ring), storedIds)("AccessToken");
  const tokens = Array.from({ length: count }, () => randomBytes(9).toString("base64url"));
  for (const token of tokens) {
    await adapter.upsert(token, { kind: "AccessToken", jti: token, grantId: "g", accountId: "a", clientId: "c" }, 60);
  }
  // The rows are keyed by the tokens' keyed hashes.
  const ids = tokens.map((token) => storedIds.of(token));
  await db.prisma.oidcRecord.updateMany({ where: { id: { in: ids } }, data: { expiresAt: new Date(Date.now() - 1000) } });
  return ids;
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(20);
  }
  return condition();
}

function sweeperSuite(t: Test, provider: DatabaseProvider): void {
  let db: Database;
  t.before(async () => {
    db = await (await createTestDatabase(t, provider)).open();
  });

  t.test("sweep deletes the expired rows, returns their count and logs it", async (t) => {
    const { log, lines } = recordingLogger();
    const sweeper = startSweeper(db, 3600, log);
    t.teardown(() => sweeper.stop());
    await addExpiredTokens(db, 3);

    t.equal(await sweeper.sweep(), 3);
    t.equal(await db.prisma.oidcRecord.count(), 0);
    t.strictSame(lines, [{ level: "info", fields: { deleted: 3, challenges: 0, emails: 0 }, message: "swept expired rows" }]);
  });

  t.test("sweep also deletes expired WebAuthn challenges, and only those", async (t) => {
    const { log, lines } = recordingLogger();
    const sweeper = startSweeper(db, 3600, log);
    t.teardown(() => sweeper.stop());
    const base = { challenge: "c", purpose: "authentication", userId: null, interactionUid: "uid" };
    await db.prisma.webAuthnChallenge.create({ data: { ...base, id: "expired", expiresAt: new Date(Date.now() - 1000) } });
    await db.prisma.webAuthnChallenge.create({ data: { ...base, id: "live", expiresAt: new Date(Date.now() + 60_000) } });
    t.equal(await sweeper.sweep(), 1);
    t.same((await db.prisma.webAuthnChallenge.findMany({ select: { id: true } })).map((c) => c.id), ["live"]);
    t.strictSame(lines, [{ level: "info", fields: { deleted: 0, challenges: 1, emails: 0 }, message: "swept expired rows" }]);
    await db.prisma.webAuthnChallenge.deleteMany();
  });

  t.test("sweep deletes sent and given-up emails past the retention, never queued ones", async (t) => {
    const { log, lines } = recordingLogger();
    const sweeper = startSweeper(db, 3600, log);
    t.teardown(() => sweeper.stop());
    const old = new Date(Date.now() - emailRetentionMs - 60_000);
    const row = (id: string, status: string, createdAt: Date) => ({ id, to: "a@example.test", kind: "password-changed", subject: "s", text: "t", html: "h", status, nextAttemptAt: createdAt, createdAt });
    await db.prisma.emailOutbox.createMany({
      data: [row("old-sent", "sent", old), row("old-failed", "failed", old), row("old-queued", "queued", old), row("new-sent", "sent", new Date())],
    });
    t.equal(await sweeper.sweep(), 2);
    t.same((await db.prisma.emailOutbox.findMany({ select: { id: true }, orderBy: { id: "asc" } })).map((r) => r.id), ["new-sent", "old-queued"]);
    t.strictSame(lines, [{ level: "info", fields: { deleted: 0, challenges: 0, emails: 2 }, message: "swept expired rows" }]);
    await db.prisma.emailOutbox.deleteMany();
  });

  t.test("sweep deletes email links a week past their expiry, and only those", async (t) => {
    const { log, lines } = recordingLogger();
    const sweeper = startSweeper(db, 3600, log);
    t.teardown(() => sweeper.stop());
    const day = 24 * 3600 * 1000;
    const link = (id: string, expiresAt: Date) => ({ id, tokenHash: `hash-${id}`, userId: "u", purpose: "password-reset", expiresAt });
    await db.prisma.emailLinkToken.createMany({
      data: [link("long-gone", new Date(Date.now() - 8 * day)), link("just-expired", new Date(Date.now() - day)), link("live", new Date(Date.now() + 3600_000))],
    });
    t.equal(await sweeper.sweep(), 1);
    t.same((await db.prisma.emailLinkToken.findMany({ select: { id: true }, orderBy: { id: "asc" } })).map((r) => r.id), ["just-expired", "live"], "an expired link is kept a week: a late click is told it expired");
    t.strictSame(lines, [{ level: "info", fields: { deleted: 0, challenges: 0, emails: 0, emailLinks: 1 }, message: "swept expired rows" }]);
    await db.prisma.emailLinkToken.deleteMany();
  });

  t.test("a sweep with nothing to delete returns 0 and logs nothing", async (t) => {
    const { log, lines } = recordingLogger();
    const sweeper = startSweeper(db, 3600, log);
    t.teardown(() => sweeper.stop());
    t.equal(await sweeper.sweep(), 0);
    t.strictSame(lines, []);
  });

  t.test("the sweeper runs on its interval until stopped", async (t) => {
    const { log, lines } = recordingLogger();
    const sweeper = startSweeper(db, 0.05, log);
    t.teardown(() => sweeper.stop());
    const ids = await addExpiredTokens(db, 2);
    t.ok(await waitFor(async () => (await db.prisma.oidcRecord.count({ where: { id: { in: ids } } })) === 0), "swept without being asked");
    // A sweep may fall between the two inserts: the logged counts add up to the
    // two rows (the line comes at the end of the sweep, after the deletes).
    const logged = () => lines.filter((l) => l.level === "info").reduce((sum, l) => sum + Number(l.fields.deleted ?? 0), 0);
    await waitFor(async () => logged() >= 2, 2000);
    t.equal(logged(), 2, "the scheduled sweeps logged what they deleted");

    sweeper.stop();
    const later = await addExpiredTokens(db, 1);
    await sleep(250);
    t.equal(await db.prisma.oidcRecord.count({ where: { id: { in: later } } }), 1, "no sweep after stop");
    await db.prisma.oidcRecord.deleteMany({ where: { id: { in: later } } });
  });
}

for (const provider of providers(t)) {
  t.test(provider, async (t) => sweeperSuite(t, provider));
}

t.test("a failing scheduled sweep is logged, not thrown", async (t) => {
  const { log, lines } = recordingLogger();
  const failure = new Error("database is gone");
  const broken = { prisma: { oidcRecord: { deleteMany: () => Promise.reject(failure) } } } as unknown as Database;
  const sweeper = startSweeper(broken, 0.02, log);
  t.teardown(() => sweeper.stop());
  t.ok(await waitFor(async () => lines.length > 0, 2000), "the failure was logged");
  t.equal(lines[0]?.level, "error");
  t.equal(lines[0]?.fields.err, failure);
  await t.rejects(sweeper.sweep(), failure, "a direct sweep() call reports the failure to its caller");
});
