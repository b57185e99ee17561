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
 *
 * Master key rotation: an event's hash names the master key it was made with.
 * rekeyAuditChain() (run by `gatehouse keys reseal`) adds to every event made
 * with an older master key an attestation under the newest one, so that the
 * old master key can be removed and the chain still verifies. Hashes are not
 * rewritten: heads kept by operators stay valid.
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import type { Database, Tx } from "../db/transaction.ts";
import { MasterKeyError, type DerivedKey, type MasterKeyRing } from "../crypto/master-keys.ts";
import {
  appendAuditEventAlone,
  findAuditEventBySeq,
  findAuditHead,
  findLastAuditHash,
  insertAuditEvent,
  lockAuditChain,
  setAuditRekeyHashes,
  walkAuditEvents,
  type AuditRow,
  type ChainedAuditRow,
} from "../db/audit-events.ts";
import type { Actor } from "./actor.ts";

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
function hashEvent(key: DerivedKey, prevHash: string, row: AuditContent): string {
  const content = canonicalJson({ ...row, createdAt: row.createdAt.toISOString() });
  return `${key.kid}:${createHmac("sha256", key.key).update(prevHash).update("\n").update(content).digest("hex")}`;
}

type AuditContent = Omit<AuditRow, "seq" | "hash" | "prevHash">;

/**
 * An event's re-key attestation: `<master key id>:<HMAC-SHA256 hex>` under
 * the given key over the event's hash, its previous hash and its content. It
 * vouches for exactly what the original hash vouched for (and the hash
 * itself), so it can stand in for it once that master key is gone.
 */
function attestEvent(key: DerivedKey, hash: string, prevHash: string, row: AuditContent): string {
  const content = canonicalJson({ ...row, createdAt: row.createdAt.toISOString() });
  const mac = createHmac("sha256", key.key).update("rekey\n").update(hash).update("\n").update(prevHash).update("\n").update(content).digest("hex");
  return `${key.kid}:${mac}`;
}

/** The master key id a hash or attestation names, or undefined when it names none. */
function keyIdOf(value: string | null): string | undefined {
  return value?.includes(":") ? value.split(":", 1)[0] : undefined;
}

/** Appends an event inside the caller's transaction `tx`. */
export async function appendAuditEvent(tx: Tx, db: Pick<Database, "auditKey">, input: AuditInput): Promise<void> {
  const chain = chainer(db, input);
  await lockAuditChain(tx);
  await insertAuditEvent(tx, chain(await findLastAuditHash(tx)));
}

/** Records an event that has no other change to share a transaction with. */
export async function recordAuditEvent(db: Database, input: AuditInput): Promise<void> {
  await appendAuditEventAlone(db, chainer(db, input));
}

/** The event's row, linked to the head whose hash it is given. */
function chainer(db: Pick<Database, "auditKey">, input: AuditInput) {
  const key = db.auditKey;
  // Fail before writing anything: an unchained event would break verification.
  if (!key) throw new Error("the audit log needs the master key: open the database with an audit key");
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
  return (head: string | undefined) => {
    const prevHash = head ?? genesis;
    return { ...row, prevHash, hash: hashEvent(key, prevHash, row) };
  };
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

/** Derives the chain keys of the ring's master keys on demand; undefined for a key not in the ring. */
function chainKeys(ring: MasterKeyRing): (kid: string | undefined) => DerivedKey | undefined {
  const keys = new Map<string, DerivedKey | undefined>();
  return (kid) => {
    if (kid === undefined) return undefined;
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
}

/**
 * Why one event does not verify, or undefined when it does: its link to the
 * previous event, then every MAC that the ring can check (the original hash,
 * and the re-key attestation if there is one); at least one must be checkable.
 */
function checkEvent(event: ChainedAuditRow, prevHash: string, keyFor: (kid: string | undefined) => DerivedKey | undefined): string | undefined {
  const { seq: _seq, hash, prevHash: storedPrev, rekeyHash, ...content } = event;
  if (storedPrev !== prevHash) return "previous hash does not match (an event before it was removed or altered)";
  const kid = keyIdOf(hash);
  if (kid === undefined) return "the event is not keyed";
  const original = keyFor(kid);
  const attester = keyFor(keyIdOf(rekeyHash));
  if (!original && !attester) return `keyed with master key ${kid}, which is not in MASTER_KEYS`;
  if (original && !sameText(hashEvent(original, prevHash, content), hash)) return "content does not match its hash";
  if (attester && !sameText(attestEvent(attester, hash, prevHash, content), rekeyHash!)) return "content does not match its re-key attestation";
  return undefined;
}

/**
 * Walks the chain oldest first and names the first event that does not match.
 * With `keptHead` (a head printed by an earlier verification), also checks
 * that the event is still there with the same hash: deleting the newest
 * events, which leaves a valid shorter chain, is found that way.
 */
export async function verifyAuditChain(db: Database, ring: MasterKeyRing, keptHead?: ChainHead): Promise<ChainVerification> {
  const keyFor = chainKeys(ring);
  let prevHash = genesis;
  let events = 0;
  let firstBad: { seq: number; id: string; reason: string } | undefined;
  for await (const event of walkAuditEvents(db)) {
    events += 1;
    const reason = checkEvent(event, prevHash, keyFor);
    if (reason) {
      firstBad = { seq: event.seq, id: event.id, reason };
      break;
    }
    prevHash = event.hash;
  }
  if (!firstBad && keptHead) {
    const kept = await findAuditEventBySeq(db, keptHead.seq);
    if (!kept || !sameText(kept.hash, keptHead.hash)) {
      firstBad = { seq: keptHead.seq, id: kept?.id ?? "", reason: kept ? "the kept head's hash does not match: the chain was rewritten" : "the kept head is gone: events were cut from the chain" };
    }
  }
  const head = await findAuditHead(db);
  if (firstBad) return { ok: false, events, head, firstBad };
  return { ok: true, events, head };
}

export class AuditChainError extends Error {
  readonly code = "audit_chain_broken";
  override readonly name = "AuditChainError";
}

export interface RekeyResult {
  /** The master key id the chain is now verifiable with. */
  masterKey: string;
  /** Events that got an attestation under it. */
  rekeyed: number;
  /** The head when re-keying started (hashes are unchanged: it stays valid). */
  head: ChainHead | null;
}

/**
 * Makes the whole audit chain verifiable with the newest master key alone,
 * so that older master keys can be removed after `gatehouse keys reseal`.
 * Verifies the chain first with every key of the ring and refuses, writing
 * nothing, when it does not verify. Then gives each event made with an older
 * master key an attestation under the newest (attestEvent), in short batches,
 * each checked again just before it is written. Nothing is rewritten, so
 * appends go on meanwhile, an interrupted run leaves a valid chain and a
 * second run finishes it (idempotent), and heads kept for `audit verify
 * --head` stay valid. Records `audit.rekeyed` with the head it started from.
 */
export async function rekeyAuditChain(db: Database, ring: MasterKeyRing, actor: Actor): Promise<RekeyResult> {
  const verification = await verifyAuditChain(db, ring);
  if (!verification.ok) {
    const bad = verification.firstBad;
    throw new AuditChainError(`the audit chain does not verify at event ${bad.id} (seq ${bad.seq}): ${bad.reason}; nothing was resealed or re-keyed`);
  }
  const newest = ring.deriveKey(auditPurpose);
  const keyFor = chainKeys(ring);
  let prevHash = genesis;
  let rekeyed = 0;
  let batch: { seq: number; hash: string; rekeyHash: string }[] = [];
  const flush = async () => {
    rekeyed += await setAuditRekeyHashes(db, batch);
    batch = [];
  };
  for await (const event of walkAuditEvents(db)) {
    // Events appended while this runs are keyed with the newest key already.
    if (keyIdOf(event.hash) !== newest.kid && keyIdOf(event.rekeyHash) !== newest.kid) {
      const reason = checkEvent(event, prevHash, keyFor);
      if (reason) {
        await flush();
        throw new AuditChainError(`audit event ${event.id} (seq ${event.seq}) changed while re-keying: ${reason}`);
      }
      const { seq, hash, prevHash: _prev, rekeyHash: _rekey, ...content } = event;
      batch.push({ seq, hash, rekeyHash: attestEvent(newest, hash, event.prevHash, content) });
      if (batch.length >= 200) await flush();
    }
    prevHash = event.hash;
  }
  await flush();
  await recordAuditEvent(db, {
    ...actor,
    type: "audit.rekeyed",
    data: { master_key: newest.kid, events_rekeyed: rekeyed, old_head: verification.head },
  });
  return { masterKey: newest.kid, rekeyed, head: verification.head };
}
