/**
 * What transaction() (src/db/transaction.ts) promises on each database
 * (docs/ARCHITECTURE.md, "Transactions"): read-then-write work stays correct
 * when other transactions run at the same time.
 */
import t, { type Test } from "tap";
import { randomBytes, randomUUID } from "node:crypto";
import type { DatabaseProvider } from "../../src/db/database.ts";
import { createMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { auditKeyOf } from "../../src/services/audit.ts";
import { createUser } from "../../src/services/users.ts";
import { removePasskey } from "../../src/services/passkeys.ts";
import { countPasskeysOfUser, insertPasskey } from "../../src/db/passkeys.ts";
import { AppError } from "../../src/errors.ts";
import { testConfig } from "../helpers/config.ts";
import { createTestDatabase, providers } from "../helpers/databases.ts";

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
}

for (const provider of providers(t)) t.test(`transactions on ${provider}`, (t) => suite(t, provider));
