/**
 * The audit log (SPEC section 8): what happened, who did it, to whom, from
 * where. Events are written in the same transaction as the change they record
 * and chained by hash: each event's hash covers its content and the previous
 * event's hash, so editing or deleting a past event breaks every later link,
 * which verifyAuditChain() finds.
 */
import { createHash, randomUUID } from "node:crypto";
import type { Database, Tx } from "../db/database.ts";
import { findLastAuditHash, insertAuditEvent, lockAuditChain, walkAuditEvents, type AuditRow } from "../db/audit-events.ts";

export type AuditActorType = "user" | "client" | "operator" | "system";

export interface AuditInput {
  type: string;
  actorType: AuditActorType;
  actorId?: string | null;
  userId?: string | null;
  clientId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  /** Details; never secrets, passwords or tokens. */
  data?: Record<string, unknown>;
}

const genesis = "0".repeat(64);

/** JSON with object keys sorted at every level, so the hash does not depend on key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

function hashEvent(prevHash: string, row: Omit<AuditRow, "seq" | "hash" | "prevHash">): string {
  const content = canonicalJson({ ...row, createdAt: row.createdAt.toISOString() });
  return createHash("sha256").update(prevHash).update("\n").update(content).digest("hex");
}

/** Appends an event inside the caller's transaction `tx`. */
export async function appendAuditEvent(tx: Tx, provider: Database["provider"], input: AuditInput): Promise<void> {
  await lockAuditChain(tx, provider);
  const prevHash = (await findLastAuditHash(tx)) ?? genesis;
  const row = {
    id: randomUUID(),
    createdAt: new Date(),
    type: input.type,
    actorType: input.actorType,
    actorId: input.actorId ?? null,
    userId: input.userId ?? null,
    clientId: input.clientId ?? null,
    ip: input.ip ?? null,
    userAgent: input.userAgent?.slice(0, 512) ?? null,
    data: JSON.stringify(input.data ?? {}),
  };
  await insertAuditEvent(tx, { ...row, prevHash, hash: hashEvent(prevHash, row) });
}

/** Records an event that has no other change to share a transaction with. */
export async function recordAuditEvent(db: Database, input: AuditInput): Promise<void> {
  await db.prisma.$transaction((tx) => appendAuditEvent(tx, db.provider, input));
}

export type ChainVerification = { ok: true; events: number } | { ok: false; events: number; firstBad: { seq: number; id: string; reason: string } };

/** Walks the chain oldest first and names the first event that does not match. */
export async function verifyAuditChain(db: Database): Promise<ChainVerification> {
  let prevHash = genesis;
  let events = 0;
  for await (const event of walkAuditEvents(db.prisma)) {
    events += 1;
    const { seq, hash, prevHash: storedPrev, ...content } = event;
    if (storedPrev !== prevHash) return { ok: false, events, firstBad: { seq, id: event.id, reason: "previous hash does not match (an event before it was removed or altered)" } };
    if (hashEvent(prevHash, content) !== hash) return { ok: false, events, firstBad: { seq, id: event.id, reason: "content does not match its hash" } };
    prevHash = hash;
  }
  return { ok: true, events };
}
