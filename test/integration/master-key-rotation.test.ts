/**
 * Master key rotation (README, "Rotating the master key"): a server whose
 * stored values need a master key that is not configured refuses to start,
 * naming it; `gatehouse keys reseal` re-encrypts every sealed value with the
 * newest master key and re-keys the audit chain while an instance serves,
 * is idempotent, and refuses a chain that does not verify; afterwards the
 * old master key can be removed. On SQLite and PostgreSQL.
 */
import t from "tap";
import { randomBytes } from "node:crypto";
import { decodeProtectedHeader } from "jose";
import { createMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { auditKeyOf } from "../../src/services/audit.ts";
import { ensureSigningKeys } from "../../src/oidc/keys.ts";
import { createClient } from "../../src/services/clients.ts";
import type { Database } from "../../src/db/database.ts";
import { providers, createTestDatabase } from "../helpers/databases.ts";
import { freePort, runCli, startServer, root, serverArgs } from "../helpers/processes.ts";
import { spawn } from "node:child_process";

const b64 = (key: Buffer) => key.toString("base64");

/** The master key id each sealed value names, by column. */
async function sealedWith(db: Database): Promise<string[]> {
  const keys = await db.prisma.signingKey.findMany();
  const clients = await db.prisma.client.findMany({ where: { secretEncrypted: { not: null } } });
  return [...keys.map((k) => k.privateJwkEncrypted), ...clients.map((c) => c.secretEncrypted!)].map((jwe) => String(decodeProtectedHeader(jwe).kid));
}

async function clientCredentials(base: string, clientId: string, secret: string): Promise<number> {
  const res = await fetch(`${base}/token`, {
    method: "POST",
    headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials", scope: "admin:read" }),
  });
  await res.text();
  return res.status;
}

/** Runs the server expecting it to stop at start-up; returns its exit code and stderr. */
async function failedStart(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const port = String(await freePort());
  return new Promise((resolve) => {
    const child = spawn(process.execPath, serverArgs(), { cwd: root, env: { PATH: process.env.PATH, LOG_LEVEL: "warn", PORT: port, ...env } });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stderr: stderr.replace(/^oidc-provider WARNING.*\n/m, "") }));
  });
}

for (const provider of providers(t)) {
  t.test(`master key rotation on ${provider}`, async (t) => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const oldRing = createMasterKeyRing([oldKey]);
    const [oldKid, newKid] = [oldRing.kids[0]!, createMasterKeyRing([newKey]).kids[0]!];
    const database = await createTestDatabase(t, provider);
    const db = await database.open({ auditKey: auditKeyOf(oldRing) });
    await ensureSigningKeys(db, oldRing);
    const client = await createClient(db, oldRing, { name: "Service", grantTypes: ["client_credentials"], scope: "admin:read", redirectUris: [] });
    const env = (keys: Buffer[]) => ({ DATABASE_URL: database.url, MASTER_KEYS: keys.map(b64).join(",") });
    const headBefore = JSON.parse((await runCli(["audit", "verify"], env([oldKey]))).stdout) as { head: { seq: number; hash: string } };

    await t.test("a server whose keys are sealed with a master key that is not configured stops with one line naming it", async (t) => {
      const result = await failedStart(env([newKey]));
      t.equal(result.code, 1);
      t.match(result.stderr, new RegExp(`^gatehouse: \\S+ of \\S+ is sealed with master key ${oldKid}, which is not in MASTER_KEYS \\(configured: ${newKid}\\)\\n$`));
    });

    await t.test("keys reseal re-encrypts every sealed value while an instance serves, with no failed request", async (t) => {
      const oldKeyed = await db.prisma.auditEvent.count({ where: { hash: { startsWith: `${oldKid}:` } } });
      t.ok(oldKeyed > 0, "there are audit events keyed with the old master key");
      const server = await startServer(t, env([newKey, oldKey]));
      const statuses: number[] = [];
      let serving = true;
      const load = (async () => {
        while (serving) statuses.push(await clientCredentials(server.url, client.client_id, client.client_secret!));
      })();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const result = await runCli(["keys", "reseal"], env([newKey, oldKey]));
      await new Promise((resolve) => setTimeout(resolve, 300));
      serving = false;
      await load;
      t.equal(result.code, 0, result.stderr);
      const printed = JSON.parse(result.stdout) as Record<string, unknown>;
      t.match(printed, { master_key: newKid, resealed: 4, by_column: { "SigningKey.privateJwkEncrypted": 3, "Client.secretEncrypted": 1 } });
      t.equal(printed.audit_events_rekeyed, oldKeyed, "every audit event made with the old key is re-keyed");
      t.same(new Set(await sealedWith(db)), new Set([newKid]), "every sealed value names the new master key");
      t.ok(statuses.length > 5, `requests were served during the reseal (${statuses.length})`);
      t.same(statuses.filter((s) => s !== 200), [], "none failed");
      await server.stop();
    });

    await t.test("keys reseal is idempotent", async (t) => {
      const again = await runCli(["keys", "reseal"], env([newKey, oldKey]));
      t.equal(again.code, 0, again.stderr);
      t.match(JSON.parse(again.stdout), { resealed: 0, audit_events_rekeyed: 0 });
    });

    await t.test("afterwards the old master key can be removed", async (t) => {
      const verify = await runCli(["audit", "verify", "--head", `${headBefore.head.seq}:${headBefore.head.hash}`], env([newKey]));
      t.equal(verify.code, 0, `the audit chain verifies with the new key alone, and a head kept from before still matches: ${verify.stderr}`);
      const types = (await db.prisma.auditEvent.findMany({ select: { type: true } })).map((e) => e.type);
      t.ok(types.includes("audit.rekeyed") && types.includes("master_key.resealed"), "both steps are audited");
      const rekeyed = await db.prisma.auditEvent.findFirstOrThrow({ where: { type: "audit.rekeyed" } });
      t.match(JSON.parse(rekeyed.data), { master_key: newKid, old_head: { seq: Number, hash: String } }, "audit.rekeyed records the head it started from");
      const server = await startServer(t, env([newKey]));
      t.equal(await clientCredentials(server.url, client.client_id, client.client_secret!), 200, "the client secret opens with the new key alone");
      await server.stop();
      const tooOld = await runCli(["audit", "verify"], env([oldKey]));
      t.equal(tooOld.code, 1, "the old key alone can no longer verify the events made since");
    });

    await t.test("an event altered after re-keying is found with the new key alone", async (t) => {
      const old = await db.prisma.auditEvent.findFirstOrThrow({ where: { hash: { startsWith: `${oldKid}:` } }, orderBy: { seq: "asc" } });
      await db.prisma.auditEvent.update({ where: { seq: old.seq }, data: { data: JSON.stringify({ client_name: "Forged" }) } });
      const verify = await runCli(["audit", "verify"], env([newKey]));
      t.equal(verify.code, 1);
      t.equal(verify.stderr, `gatehouse: audit chain broken at event ${old.id} (seq ${old.seq}): content does not match its re-key attestation\n`);
      await db.prisma.auditEvent.update({ where: { seq: old.seq }, data: { rekeyHash: null } });
      const stripped = await runCli(["audit", "verify"], env([newKey]));
      t.match(stripped.stderr, `keyed with master key ${oldKid}, which is not in MASTER_KEYS`, "removing the attestation does not help");
    });
  });

  t.test(`keys reseal refuses an audit chain that does not verify and writes nothing, ${provider}`, async (t) => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const oldRing = createMasterKeyRing([oldKey]);
    const database = await createTestDatabase(t, provider);
    const db = await database.open({ auditKey: auditKeyOf(oldRing) });
    await ensureSigningKeys(db, oldRing);
    await createClient(db, oldRing, { name: "One", grantTypes: ["client_credentials"], scope: "admin:read", redirectUris: [] });
    await createClient(db, oldRing, { name: "Two", grantTypes: ["client_credentials"], scope: "admin:read", redirectUris: [] });
    const first = await db.prisma.auditEvent.findFirstOrThrow({ orderBy: { seq: "asc" } });
    await db.prisma.auditEvent.update({ where: { seq: first.seq }, data: { data: JSON.stringify({ client_name: "Forged" }) } });
    const before = await sealedWith(db);
    const result = await runCli(["keys", "reseal"], { DATABASE_URL: database.url, MASTER_KEYS: [newKey, oldKey].map(b64).join(",") });
    t.equal(result.code, 1);
    t.equal(result.stderr, `gatehouse: the audit chain does not verify at event ${first.id} (seq ${first.seq}): content does not match its hash; nothing was resealed\n`);
    t.same(await sealedWith(db), before, "no value was resealed");
    t.equal(await db.prisma.auditEvent.count({ where: { rekeyHash: { not: null } } }), 0, "no event was re-keyed");
  });
}
