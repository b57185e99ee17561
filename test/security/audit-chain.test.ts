/**
 * Attacks on the audit log's tamper evidence (docs/SECURITY.md): someone with
 * write access to the database but not the master key rewrites events and
 * recomputes the chain, or cuts the newest events off the end. Both must be
 * found by `gatehouse audit verify` (the real CLI), on SQLite and PostgreSQL.
 */
import t, { type Test } from "tap";
import { createHash, createHmac } from "node:crypto";
import { providers } from "../helpers/databases.ts";
import { startApp, uniqueEmail, type RunningApp } from "../helpers/http-flow.ts";
import { AdminApi, makeAdminClient } from "../helpers/admin.ts";
import { runAuditVerify } from "../helpers/processes.ts";
// The canonical form the chain hashes, as an attacker reads it from the source.
import { canonicalJson } from "../../src/services/audit.ts";


const verify = (running: RunningApp, ...args: string[]) => runAuditVerify(running.config, ...args);

type Recompute = (prevHash: string, content: string, keepPrefixOf: string) => string;

/**
 * Rewrites every event from `fromSeq` on (a forged type on the first one) and
 * recomputes each link with `recompute`, as an attacker without the master key would.
 */
async function rewriteChain(running: RunningApp, fromSeq: number, recompute: Recompute) {
  const { prisma } = running.db;
  const rows = await prisma.auditEvent.findMany({ orderBy: { seq: "asc" } });
  let prevHash = rows.filter((r) => r.seq < fromSeq).at(-1)?.hash ?? "0".repeat(64);
  for (const row of rows.filter((r) => r.seq >= fromSeq)) {
    const { seq, hash, prevHash: _old, ...content } = row;
    const forged = seq === fromSeq ? { ...content, type: "user.updated", data: JSON.stringify({ note: "nothing happened here" }) } : content;
    const newHash = recompute(prevHash, canonicalJson({ ...forged, createdAt: forged.createdAt.toISOString() }), hash);
    await prisma.auditEvent.update({ where: { seq }, data: { ...forged, prevHash, hash: newHash } });
    prevHash = newHash;
  }
}

async function chainAttacks(t: Test, provider: "sqlite" | "postgresql") {
  const running = await startApp(t, { provider });
  const { prisma } = running.db;
  const api = new AdminApi(running, (await makeAdminClient(running, "admin:write")).token);
  for (let i = 0; i < 6; i++) t.equal((await api.post("/admin/v1/users", { email: uniqueEmail("chain") })).status, 201);
  const events = await prisma.auditEvent.findMany({ orderBy: { seq: "asc" } });
  const target = events[2]!;
  const snapshot = events.map((e) => ({ ...e }));
  const restore = async () => {
    await prisma.auditEvent.deleteMany({});
    for (const row of snapshot) await prisma.auditEvent.create({ data: row });
  };

  t.test("an intact chain verifies and reports its head", async (t) => {
    const res = await verify(running);
    t.equal(res.code, 0, res.stderr);
    t.same(res.json, { ok: true, events: events.length, head: { seq: events.at(-1)!.seq, hash: events.at(-1)!.hash } });
  });

  t.test("rewriting events and recomputing the chain with plain SHA-256 is found", async (t) => {
    t.teardown(restore);
    await rewriteChain(running, target.seq, (prev, content) => createHash("sha256").update(prev).update("\n").update(content).digest("hex"));
    const res = await verify(running);
    t.equal(res.code, 1, "exit 1");
    t.match(res.json, { ok: false, first_bad_event: { seq: target.seq, id: target.id } }, "names the first rewritten event");
  });

  t.test("recomputing with HMAC under a key the attacker chose, keeping the key id, is found", async (t) => {
    t.teardown(restore);
    await rewriteChain(running, target.seq, (prev, content, old) => `${old.split(":")[0]}:${createHmac("sha256", "guessed").update(prev).update("\n").update(content).digest("hex")}`);
    const res = await verify(running);
    t.equal(res.code, 1, "exit 1");
    t.match(res.json, { ok: false, first_bad_event: { seq: target.seq, reason: /content does not match/ } });
  });

  t.test("cutting the newest events off the end is found with a kept head", async (t) => {
    t.teardown(restore);
    const kept = (await verify(running)).json!.head as { seq: number; hash: string };
    t.equal(kept.seq, events.at(-1)!.seq, "the operator keeps the head printed by verify");
    await prisma.auditEvent.deleteMany({ where: { seq: { gte: events.at(-2)!.seq } } });
    const plain = await verify(running);
    t.equal(plain.code, 0, "without the kept head, a shorter chain is still a valid chain");
    t.same((plain.json!.head as { seq: number }).seq, events.at(-3)!.seq, "but its reported head moved back");
    const res = await verify(running, "--head", `${kept.seq}:${kept.hash}`);
    t.equal(res.code, 1, "exit 1 with --head");
    t.match(res.json, { ok: false, first_bad_event: { seq: kept.seq, reason: /gone/ } });
    t.match(res.stderr, `(seq ${kept.seq})`);
  });

  t.test("a kept head whose hash no longer matches is found", async (t) => {
    const res = await verify(running, "--head", `${events[1]!.seq}:${"f".repeat(64)}`);
    t.equal(res.code, 1);
    t.match(res.json, { ok: false, first_bad_event: { seq: events[1]!.seq, reason: /does not match/ } });
  });

  t.test("a malformed --head is a usage error", async (t) => {
    const res = await verify(running, "--head", "latest");
    t.equal(res.code, 2);
    t.match(res.stderr, /--head takes SEQ:HASH/);
  });
}

for (const provider of providers(t)) t.test(`audit chain attacks on ${provider}`, (t) => chainAttacks(t, provider));
