/**
 * The audit log (docs/SECURITY.md): what happened, who did it, to whom, from
 * where. Events are written in the same transaction as the change they record
 * and chained: each event's hash is an HMAC-SHA256, under a key derived from
 * the master key, over its content and the previous event's hash. Editing or
 * deleting a past event breaks every later link, which verifyAuditChain()
 * finds, and without the master key nobody can recompute a rewritten chain.
 * Cutting events off the end leaves a valid shorter chain: verification
 * reports the head (newest sequence number and hash) so that an operator who
 * kept an earlier head can prove it is still there (`audit verify --head`).
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import type { Database, Tx } from "../db/database.ts";
import { MasterKeyError, type DerivedKey, type MasterKeyRing } from "../crypto/master-keys.ts";
import { findAuditEventBySeq, findAuditHead, findLastAuditHash, insertAuditEvent, lockAuditChain, walkAuditEvents, type AuditRow } from "../db/audit-events.ts";

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
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

const auditPurpose = "audit-chain";

/** The key that chains new audit events: derived from the newest master key. */
export function auditKeyOf(ring: MasterKeyRing): DerivedKey {
  return ring.deriveKey(auditPurpose);
}

/**
 * An event's hash: `<master key id>:<HMAC-SHA256 hex>` over the previous hash
 * and the canonical JSON of the content. The key id lets verification pick
 * the right key after the master key has been rotated.
 */
function hashEvent(key: DerivedKey, prevHash: string, row: Omit<AuditRow, "seq" | "hash" | "prevHash">): string {
  const content = canonicalJson({ ...row, createdAt: row.createdAt.toISOString() });
  return `${key.kid}:${createHmac("sha256", key.key).update(prevHash).update("\n").update(content).digest("hex")}`;
}

/** Appends an event inside the caller's transaction `tx`. */
export async function appendAuditEvent(tx: Tx, db: Pick<Database, "provider" | "auditKey">, input: AuditInput): Promise<void> {
  // Fail before writing anything: an unchained event would break verification.
  if (!db.auditKey) throw new Error("the audit log needs the master key: open the database with an audit key");
  await lockAuditChain(tx, db.provider);
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
  await insertAuditEvent(tx, { ...row, prevHash, hash: hashEvent(db.auditKey, prevHash, row) });
}

/** Records an event that has no other change to share a transaction with. */
export async function recordAuditEvent(db: Database, input: AuditInput): Promise<void> {
  await db.prisma.$transaction((tx) => appendAuditEvent(tx, db, input));
}

/** The newest event: what an operator keeps to prove later that nothing was cut from the end. */
export interface ChainHead {
  seq: number;
  hash: string;
}

export type ChainVerification =
  | { ok: true; events: number; head: ChainHead | null }
  | { ok: false; events: number; head: ChainHead | null; firstBad: { seq: number; id: string; reason: string } };

const sameText = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/**
 * Walks the chain oldest first and names the first event that does not match.
 * With `keptHead` (a head printed by an earlier verification), also checks
 * that the event is still there with the same hash: deleting the newest
 * events, which leaves a valid shorter chain, is found that way.
 */
export async function verifyAuditChain(db: Database, ring: MasterKeyRing, keptHead?: ChainHead): Promise<ChainVerification> {
  const keys = new Map<string, DerivedKey | undefined>();
  const keyFor = (kid: string) => {
    if (!keys.has(kid)) {
      try {
        keys.set(kid, ring.deriveKey(auditPurpose, kid));
      } catch (error) {
        if (!(error instanceof MasterKeyError)) throw error;
        keys.set(kid, undefined);
      }
    }
    return keys.get(kid);
  };
  let prevHash = genesis;
  let events = 0;
  let firstBad: { seq: number; id: string; reason: string } | undefined;
  for await (const event of walkAuditEvents(db.prisma)) {
    events += 1;
    const { seq, hash, prevHash: storedPrev, ...content } = event;
    const kid = hash.split(":", 1)[0]!;
    const key = hash.includes(":") ? keyFor(kid) : undefined;
    const reason =
      storedPrev !== prevHash
        ? "previous hash does not match (an event before it was removed or altered)"
        : !hash.includes(":")
          ? "the event is not keyed"
          : !key
            ? `keyed with master key ${kid}, which is not in MASTER_KEYS`
            : !sameText(hashEvent(key, prevHash, content), hash)
              ? "content does not match its hash"
              : undefined;
    if (reason) {
      firstBad = { seq, id: event.id, reason };
      break;
    }
    prevHash = hash;
  }
  if (!firstBad && keptHead) {
    const kept = await findAuditEventBySeq(db.prisma, keptHead.seq);
    if (!kept || !sameText(kept.hash, keptHead.hash)) {
      firstBad = { seq: keptHead.seq, id: kept?.id ?? "", reason: kept ? "the kept head's hash does not match: the chain was rewritten" : "the kept head is gone: events were cut from the chain" };
    }
  }
  const head = await findAuditHead(db.prisma);
  if (firstBad) return { ok: false, events, head, firstBad };
  return { ok: true, events, head };
}
