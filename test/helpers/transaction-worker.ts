/**
 * Another process on the same database, for test/integration/transactions.test.ts.
 * Usage: transaction-worker.ts DATABASE_URL ROUNDS MODE. Opens the database,
 * prints "ready", waits for a line on stdin, then runs ROUNDS transactions:
 * - "counter": transaction(), each reading the counter (the holder of the
 *   Lease row "counter"), pausing, then writing it plus one;
 * - "counter-prisma": the same through Prisma's own $transaction;
 * - "audit": recordAuditEvent, with the master key in MASTER_KEY (base64).
 * Prints one JSON line: how many committed, and the error code of each failure.
 */
import { createInterface } from "node:readline";
import { openDatabase, type Tx } from "../../src/db/database.ts";
import { transaction } from "../../src/db/transaction.ts";
import { createMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { auditKeyOf, recordAuditEvent } from "../../src/services/audit.ts";

const [url, rounds, mode] = process.argv.slice(2);
const ring = createMasterKeyRing([Buffer.from(process.env.MASTER_KEY ?? Buffer.alloc(32).toString("base64"), "base64")]);
const db = await openDatabase(url!, url!.startsWith("file:") ? "sqlite" : "postgresql", { auditKey: auditKeyOf(ring) });

async function increment(tx: Tx): Promise<void> {
  const row = await tx.lease.findUnique({ where: { name: "counter" } });
  await new Promise((resolve) => setTimeout(resolve, 10));
  await tx.lease.update({ where: { name: "counter" }, data: { holder: String(Number(row!.holder) + 1) } });
}

/** SQLite's error code behind a Prisma error: SQLITE_BUSY_SNAPSHOT comes as the code, SQLITE_BUSY as P1008's cause. */
function codeOf(error: unknown): string {
  const e = error as { code?: string; meta?: { driverAdapterError?: { cause?: { originalCode?: string } } }; message?: string };
  return e.meta?.driverAdapterError?.cause?.originalCode ?? e.code ?? String(e.message);
}

process.stdout.write("ready\n");
const lines = createInterface({ input: process.stdin });
await new Promise<void>((resolve) => lines.once("line", () => resolve()));
lines.close();
let committed = 0;
const errors: string[] = [];
for (let i = 0; i < Number(rounds); i++) {
  try {
    if (mode === "counter") await transaction(db, increment, { timeoutMs: 20_000 });
    else if (mode === "counter-prisma") await db.prisma.$transaction((tx) => increment(tx));
    else await recordAuditEvent(db, { type: "test.concurrent", actorType: "system", data: { pid: process.pid, i } });
    committed += 1;
  } catch (error) {
    errors.push(codeOf(error));
  }
}
await db.close();
process.stdout.write(`${JSON.stringify({ committed, errors })}\n`);
