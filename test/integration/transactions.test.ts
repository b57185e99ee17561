/**
 * What transaction() (src/db/transaction.ts) promises on each database
 * (docs/ARCHITECTURE.md, "Transactions"): read-then-write work stays correct
 * when other transactions run at the same time.
 */
import t, { type Test } from "tap";
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import type { DatabaseProvider } from "../../src/db/database.ts";
import { createMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { auditKeyOf, verifyAuditChain } from "../../src/services/audit.ts";
import { createUser } from "../../src/services/users.ts";
import { transaction } from "../../src/db/transaction.ts";
import { removePasskey } from "../../src/services/passkeys.ts";
import { countPasskeysOfUser, insertPasskey } from "../../src/db/passkeys.ts";
import { AppError } from "../../src/errors.ts";
import { testConfig } from "../helpers/config.ts";
import { createTestDatabase, providers } from "../helpers/databases.ts";
import { root } from "../helpers/processes.ts";

interface WorkerResult {
  committed: number;
  errors: string[];
}

/**
 * Runs test/helpers/transaction-worker.ts in `count` processes on `url`,
 * released together once all have opened the database.
 */
async function runWorkers(url: string, mode: "counter" | "counter-prisma" | "audit", rounds: number, masterKey: Buffer, count = 2): Promise<WorkerResult[]> {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, MASTER_KEY: masterKey.toString("base64") };
  const workers = Array.from({ length: count }, () => {
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "test/helpers/transaction-worker.ts"), url, String(rounds), mode], { cwd: root, env });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d) => {
        stdout += d;
        if (stdout.startsWith("ready\n")) resolve();
      });
      child.on("exit", (code) => reject(new Error(`worker exited with ${code} before it was ready: ${stderr}`)));
    });
    const done = new Promise<WorkerResult>((resolve, reject) =>
      child.on("close", (code) => {
        const last = stdout.trim().split("\n").at(-1) ?? "";
        if (code === 0 && last.startsWith("{")) resolve(JSON.parse(last) as WorkerResult);
        else reject(new Error(`worker exited with ${code}: ${stderr}`));
      }),
    );
    return { child, ready, done };
  });
  await Promise.all(workers.map((w) => w.ready));
  for (const w of workers) w.child.stdin.end("go\n");
  return Promise.all(workers.map((w) => w.done));
}

async function suite(t: Test, provider: DatabaseProvider): Promise<void> {
  const database = await createTestDatabase(t, provider);
  const ring = createMasterKeyRing([randomBytes(32)]);
  const argon2 = testConfig(t).argon2;

  t.test("a user removing two passkeys at once keeps one: the last way to sign in stays", async (t) => {
    // PostgreSQL: two instances, each with its own pool, as behind a load
    // balancer. SQLite: one process has one connection (a second one in the
    // same process would wait for the first synchronously, holding up the
    // event loop the first needs to finish); other processes are below.
    const a = await database.open({ auditKey: auditKeyOf(ring) });
    const b = provider === "postgresql" ? await database.open({ auditKey: auditKeyOf(ring) }) : a;
    for (let round = 0; round < 5; round++) {
      const user = await createUser(a, argon2, { email: `passkeys-${randomUUID()}@example.test` });
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        const id = randomUUID();
        await insertPasskey(a, {
          id,
          userId: user.id,
          credentialId: new Uint8Array(randomBytes(16)),
          publicKey: new Uint8Array(randomBytes(32)),
          counter: 0n,
          deviceType: "multiDevice",
          backedUp: true,
          transports: "[]",
          name: `Passkey ${i + 1}`,
        });
        ids.push(id);
      }
      const actor = { actorType: "user" as const, actorId: user.id };
      const outcomes = await Promise.allSettled([removePasskey(a, ids[0]!, user.id, actor), removePasskey(b, ids[1]!, user.id, actor)]);
      const refused = outcomes.filter((o) => o.status === "rejected");
      t.equal(outcomes.filter((o) => o.status === "fulfilled").length, 1, `round ${round + 1}: one removal succeeds`);
      t.ok(refused.length === 1 && refused[0]!.reason instanceof AppError && refused[0]!.reason.code === "conflict", "the other is refused as the last way to sign in");
      t.equal(await countPasskeysOfUser(a, user.id), 1, "one passkey is left");
    }
  });

  t.test("a statement outside a transaction is neither part of it nor sees it: a rollback keeps the other's write", async (t) => {
    const db = await database.open();
    const lease = (name: string) => ({ data: { name, holder: "test", expiresAt: new Date() } });
    const [inside, outside] = [`inside-${randomUUID()}`, `outside-${randomUUID()}`];
    let wrote!: () => void;
    const written = new Promise<void>((resolve) => (wrote = resolve));
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const rolledBack = transaction(db, async (tx) => {
      await tx.lease.create(lease(inside));
      wrote();
      await finished;
      throw new Error("changed its mind");
    }).catch((error: Error) => error.message);
    await written;
    // Another request's statements while the transaction is open (on SQLite,
    // one process has one connection: they must not run inside it).
    // (.then starts them: Prisma's queries are lazy.)
    const write = db.prisma.lease.create(lease(outside)).then(() => undefined);
    const read = db.prisma.lease.findUnique({ where: { name: inside } }).then((row) => row);
    await new Promise((resolve) => setTimeout(resolve, 50));
    finish();
    t.equal(await rolledBack, "changed its mind");
    await write;
    t.equal(await read, null, "the other request did not see the uncommitted row");
    t.ok(await db.prisma.lease.findUnique({ where: { name: outside } }), "the other request's write was kept");
    t.equal(await db.prisma.lease.findUnique({ where: { name: inside } }), null, "the transaction's own write was rolled back");
  });

  t.test("two processes appending audit events at once keep one chain", async (t) => {
    const own = await createTestDatabase(t, provider);
    const masterKey = randomBytes(32);
    const results = await runWorkers(own.url, "audit", 20, masterKey);
    t.same(results, [{ committed: 20, errors: [] }, { committed: 20, errors: [] }], "every append committed");
    const verification = await verifyAuditChain(await own.open(), createMasterKeyRing([masterKey]));
    t.ok(verification.ok, "the chain verifies: no two events share a previous hash");
    t.equal(verification.events, 40);
  });

  if (provider !== "sqlite") return;

  t.test("two processes running read-then-write transactions on one SQLite file: no SQLITE_BUSY, no lost update", async (t) => {
    const own = await createTestDatabase(t, provider);
    const db = await own.open();
    await db.prisma.lease.create({ data: { name: "counter", holder: "0", expiresAt: new Date() } });
    const results = await runWorkers(own.url, "counter", 20, randomBytes(32));
    t.same(results, [{ committed: 20, errors: [] }, { committed: 20, errors: [] }], "every transaction committed");
    t.equal((await db.prisma.lease.findUnique({ where: { name: "counter" } }))?.holder, "40", "each saw the other's writes");
  });

  t.test("the same work through Prisma's own $transaction (a deferred BEGIN) fails with SQLITE_BUSY: why transaction() takes the write lock first", async (t) => {
    const own = await createTestDatabase(t, provider);
    const db = await own.open();
    await db.prisma.lease.create({ data: { name: "counter", holder: "0", expiresAt: new Date() } });
    const results = await runWorkers(own.url, "counter-prisma", 20, randomBytes(32));
    const errors = results.flatMap((r) => r.errors);
    t.comment(`failures: ${errors.join(", ")}`);
    t.ok(errors.length > 0 && errors.every((code) => /^SQLITE_BUSY/.test(code)), "some transactions failed, each with SQLITE_BUSY or SQLITE_BUSY_SNAPSHOT");
  });
}

for (const provider of providers(t)) t.test(`transactions on ${provider}`, (t) => suite(t, provider));
