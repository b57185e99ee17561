/**
 * The signing key lifecycle (README, "Signing keys"): `next` (published in
 * the JWKS, signs nothing) -> `current` (signs; one per algorithm) ->
 * `retired` (published, verifies only) -> removed. A next key becomes
 * current once it has been published for KEY_PUBLISH_AHEAD, so that every
 * relying party's cached JWKS has it before it signs anything; a retired key
 * stays published until everything it signed has expired (keyRetention).
 * Every change of the key set happens under one database lock (db/locks.ts),
 * so that on several instances exactly one makes it; each instance then
 * picks the new set up by itself (jobs/key-set.ts).
 */
import type { Config } from "../config.ts";
import type { Database, Tx } from "../db/transaction.ts";
import type { MasterKeyRing } from "../crypto/master-keys.ts";
import { withExclusiveLock, withExclusiveLockWait, lockBusy } from "../db/locks.ts";
import {
  activateSigningKey,
  deleteSigningKey,
  findSigningKeyState,
  insertSigningKey,
  listSigningKeyStates,
  retireSigningKey,
  type SigningKeyState,
} from "../db/signing-keys.ts";
import { generateSigningKey, privateJwkContext, signingAlgorithms, type SigningAlgorithm } from "../oidc/keys.ts";
import type { ImportedKey } from "../oidc/key-import.ts";
import { appendAuditEvent } from "./audit.ts";
import type { Actor } from "./actor.ts";
import { maxResourceAccessTokenTtl } from "../scopes.ts";

/** The lock every change of the key set is made under. */
const lockName = "signing-keys";

/**
 * Margin past the longest lifetime before a retired key is removed: clock
 * skew between instances, the seconds an instance may still sign with a key
 * after another retired it (KEYS_POLL_INTERVAL), and caches.
 */
const retirementMargin = 10 * 60;

export interface KeyPolicy {
  /** Seconds a next key is published before it becomes current. */
  publishAhead: number;
  /** Seconds between automatic rotations; undefined: off. */
  rotationInterval: number | undefined;
  /** Seconds a retired key stays published. */
  retention: number;
}

/**
 * How long a retired key stays published: the longest lifetime of what it
 * signed, plus a margin. ID tokens (ID_TOKEN_TTL) and JWT access tokens
 * (a resource server's access_token_ttl, at most maxResourceAccessTokenTtl,
 * src/scopes.ts) may expire sooner, but a relying party sends its ID token
 * back as id_token_hint at logout for as long as the session lives, and
 * oidc-provider checks that hint's signature ignoring its expiry
 * (OpenID Connect RP-Initiated Logout 1.0 section 2): so SESSION_TTL too.
 */
export function keyRetention(config: Pick<Config, "idTokenTtl" | "accessTokenTtl" | "sessionTtl">): number {
  return Math.max(config.idTokenTtl, config.accessTokenTtl, maxResourceAccessTokenTtl, config.sessionTtl) + retirementMargin;
}

/** The lifecycle's timing from the configuration (KEY_PUBLISH_AHEAD, KEY_ROTATION_INTERVAL, the token lifetimes). */
export function keyPolicyOf(config: Config): KeyPolicy {
  return { publishAhead: config.keyPublishAhead, rotationInterval: config.keyRotationInterval, retention: keyRetention(config) };
}

export class SigningKeyError extends Error {
  override readonly name = "SigningKeyError";
  constructor(
    readonly code: "not_found" | "last_current_key" | "kid_taken",
    message: string,
  ) {
    super(message);
  }
}

/** What the lifecycle will do now; empty when nothing is due. */
export interface KeyChanges {
  /** next -> current. */
  activate: SigningKeyState[];
  /** current or next -> retired. */
  retire: SigningKeyState[];
  /** retired -> removed. */
  remove: SigningKeyState[];
  /** New keys to make: `next`, or `current` at once for an algorithm with no key that signs. */
  create: { alg: SigningAlgorithm; state: "next" | "current" }[];
}

/** Whether a plan has anything to do (the job takes the lock only then). */
export function hasChanges(changes: KeyChanges): boolean {
  return changes.activate.length + changes.retire.length + changes.remove.length + changes.create.length > 0;
}

const age = (since: Date, now: Date) => (now.getTime() - since.getTime()) / 1000;
const newestFirst = (a: SigningKeyState, b: SigningKeyState) => b.createdAt.getTime() - a.createdAt.getTime() || a.kid.localeCompare(b.kid);

/**
 * Decides the lifecycle's changes at `now`, per algorithm, without side
 * effects: the newest next key published for KEY_PUBLISH_AHEAD becomes
 * current (at once when nothing signs that algorithm), the current key it
 * replaces and older next keys are retired, retired keys past their
 * retention are removed, and a new next key is made when the newest key is
 * KEY_ROTATION_INTERVAL old.
 */
export function planKeyLifecycle(keys: readonly SigningKeyState[], now: Date, policy: KeyPolicy): KeyChanges {
  const changes: KeyChanges = { activate: [], retire: [], remove: [], create: [] };
  for (const alg of signingAlgorithms) {
    const mine = keys.filter((k) => k.alg === alg).sort(newestFirst);
    const current = mine.filter((k) => k.state === "current");
    const next = mine.filter((k) => k.state === "next");
    // With a current key, a next key waits to be published for KEY_PUBLISH_AHEAD; without one, nothing can sign: promote at once.
    const due = current.length === 0 ? next : next.filter((k) => age(k.createdAt, now) >= policy.publishAhead);
    let signing = current[0];
    if (due[0]) {
      changes.activate.push(due[0]);
      changes.retire.push(...current, ...due.slice(1));
      signing = due[0];
    } else if (current.length > 1) {
      // Never expected; heal it: the most recently activated key keeps signing.
      const byActivation = [...current].sort((a, b) => (b.activatedAt?.getTime() ?? 0) - (a.activatedAt?.getTime() ?? 0));
      signing = byActivation[0];
      changes.retire.push(...byActivation.slice(1));
    }
    if (!signing) {
      changes.create.push({ alg, state: "current" });
      continue;
    }
    const newest = [signing, ...next.filter((k) => !due.includes(k))].sort(newestFirst)[0]!;
    if (policy.rotationInterval !== undefined && age(newest.createdAt, now) >= policy.rotationInterval) changes.create.push({ alg, state: "next" });
  }
  for (const key of keys) {
    if (key.state === "retired" && key.retiredAt && age(key.retiredAt, now) >= policy.retention) changes.remove.push(key);
  }
  return changes;
}

interface NewKey {
  kid: string;
  alg: SigningAlgorithm;
  publicJwk: object;
  privateJwkEncrypted: string;
}

async function makeKey(ring: MasterKeyRing, alg: SigningAlgorithm): Promise<NewKey> {
  const key = await generateSigningKey(alg);
  return { kid: key.kid, alg, publicJwk: key.publicJwk, privateJwkEncrypted: await ring.encrypt(JSON.stringify(key.privateJwk), privateJwkContext(key.kid)) };
}

/** Applies `changes` inside the lock's transaction, each with its audit event. */
async function applyChanges(tx: Tx, db: Database, changes: KeyChanges, made: Map<string, NewKey[]>, now: Date, actor: Actor, reason: string): Promise<string[]> {
  const audit = (type: string, key: { kid: string; alg: string }, data: Record<string, unknown> = {}) =>
    appendAuditEvent(tx, db, { ...actor, type, data: { kid: key.kid, alg: key.alg, reason, ...data } });
  const created: string[] = [];
  for (const key of changes.retire) {
    await retireSigningKey(tx, key.kid, now);
    await audit("signing_key.retired", key, { previous_state: key.state });
  }
  for (const key of changes.activate) {
    await activateSigningKey(tx, key.kid, now);
    await audit("signing_key.activated", key);
  }
  for (const want of changes.create) {
    const key = made.get(want.alg)?.shift();
    if (!key) throw new Error(`no key was generated for ${want.alg}`);
    await insertSigningKey(tx, { ...key, state: want.state, createdAt: now, activatedAt: want.state === "current" ? now : null });
    await audit("signing_key.created", key, { state: want.state });
    created.push(key.kid);
  }
  for (const key of changes.remove) {
    await deleteSigningKey(tx, key.kid);
    await audit("signing_key.removed", key);
  }
  return created;
}

/** Generates (outside any lock: RSA takes a moment) the keys that `changes` creates. */
async function generateFor(ring: MasterKeyRing, changes: KeyChanges): Promise<Map<string, NewKey[]>> {
  const made = new Map<string, NewKey[]>();
  for (const { alg } of changes.create) made.set(alg, [...(made.get(alg) ?? []), await makeKey(ring, alg)]);
  return made;
}

/**
 * One run of the lifecycle job: under the lock, re-reads the key set, plans
 * and applies what is due at `now` (promotion, retirement, removal,
 * automatic rotation). Returns the changes made, or undefined when another
 * instance holds the lock (it is doing the same work).
 */
export async function runKeyLifecycle(db: Database, ring: MasterKeyRing, policy: KeyPolicy, actor: Actor, now = new Date()): Promise<KeyChanges | undefined> {
  // Keys are generated before the lock for what is due now; the plan is made again under the lock.
  const made = await generateFor(ring, planKeyLifecycle(await listSigningKeyStates(db), now, policy));
  const result = await withExclusiveLock(db, lockName, async (tx) => {
    const changes = planKeyLifecycle(await listSigningKeyStates(tx), now, policy);
    for (const { alg } of changes.create) if (!made.get(alg)?.length) made.set(alg, [await makeKey(ring, alg)]);
    await applyChanges(tx, db, changes, made, now, actor, "schedule");
    return changes;
  });
  return result === lockBusy ? undefined : result;
}

/**
 * `gatehouse keys rotate`: a new next key for every algorithm, published at
 * once and current after KEY_PUBLISH_AHEAD. With `immediately` (--now) the
 * new keys are current at once: the current keys and any older next keys are
 * retired. Returns the new kids.
 */
export async function rotateSigningKeys(db: Database, ring: MasterKeyRing, { immediately }: { immediately: boolean }, actor: Actor): Promise<string[]> {
  const made = new Map<string, NewKey[]>();
  for (const alg of signingAlgorithms) made.set(alg, [await makeKey(ring, alg)]);
  return withExclusiveLockWait(db, lockName, async (tx) => {
    const now = new Date();
    const keys = await listSigningKeyStates(tx);
    const changes: KeyChanges = { activate: [], retire: [], remove: [], create: [] };
    for (const alg of signingAlgorithms) {
      changes.create.push({ alg, state: immediately ? "current" : "next" });
      if (immediately) changes.retire.push(...keys.filter((k) => k.alg === alg && (k.state === "current" || k.state === "next")));
    }
    return applyChanges(tx, db, changes, made, now, actor, immediately ? "rotate --now" : "rotate");
  });
}

/**
 * `gatehouse keys import`: stores keys checked by parsePrivateJwks() as
 * next keys, sealed with the newest master key, all or none; refuses a kid
 * that is already in the key set.
 */
export async function importSigningKeys(db: Database, ring: MasterKeyRing, keys: ImportedKey[], actor: Actor): Promise<string[]> {
  const sealed = await Promise.all(
    keys.map(async (k) => ({ ...k, privateJwkEncrypted: await ring.encrypt(JSON.stringify(k.privateJwk), privateJwkContext(k.kid)) })),
  );
  return withExclusiveLockWait(db, lockName, async (tx) => {
    const now = new Date();
    for (const key of sealed) {
      if (await findSigningKeyState(tx, key.kid)) throw new SigningKeyError("kid_taken", `a signing key with kid ${key.kid} already exists: nothing was imported`);
    }
    for (const key of sealed) {
      await insertSigningKey(tx, { kid: key.kid, alg: key.alg, state: "next", publicJwk: key.publicJwk, privateJwkEncrypted: key.privateJwkEncrypted, createdAt: now, activatedAt: null });
      await appendAuditEvent(tx, db, { ...actor, type: "signing_key.imported", data: { kid: key.kid, alg: key.alg, state: "next" } });
    }
    return sealed.map((k) => k.kid);
  });
}

/**
 * `gatehouse keys remove KID`: deletes a key at once, whatever its state
 * (the emergency path for a compromised key: what it signed stops verifying
 * as soon as relying parties refetch the JWKS). Refuses the last current key
 * of an algorithm: run `keys rotate --now` first.
 */
export async function removeSigningKey(db: Database, kid: string, actor: Actor): Promise<SigningKeyState> {
  return withExclusiveLockWait(db, lockName, async (tx) => {
    const key = await findSigningKeyState(tx, kid);
    if (!key) throw new SigningKeyError("not_found", `no signing key has kid ${kid}`);
    if (key.state === "current") {
      const others = (await listSigningKeyStates(tx)).filter((k) => k.alg === key.alg && k.state === "current" && k.kid !== kid);
      if (others.length === 0) {
        throw new SigningKeyError("last_current_key", `${kid} is the only current ${key.alg} key: run gatehouse keys rotate --now first, then remove it`);
      }
    }
    await deleteSigningKey(tx, kid);
    await appendAuditEvent(tx, db, { ...actor, type: "signing_key.removed", data: { kid, alg: key.alg, previous_state: key.state, reason: "remove" } });
    return key;
  });
}
