/**
 * Signing keys (README, "Signing keys"). Keys live in the database with their
 * private JWK sealed by the master key ring. A key is `next` (published,
 * signs nothing), `current` (signs) or `retired` (published, verifies only).
 * oidc-provider takes its keys at construction, so loadKeySet() returns
 * exactly what createProvider() needs, and a change of key set means building
 * a new provider (jobs/key-set.ts swaps it in).
 */
import { createHash } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from "jose";
import type { Database } from "../db/database.ts";
import { insertMissingCurrentKeys, listSigningKeyRows, type SigningKeyState } from "../db/signing-keys.ts";
import { MasterKeyError, sealContext, type MasterKeyRing } from "../crypto/master-keys.ts";
import { tokenSigningAlgs, type TokenSigningAlg } from "../protocol.ts";

/**
 * The algorithms of the key set: one current key each, so that every client
 * gets ID tokens in the algorithm it registered (RS256 by default).
 */
export const signingAlgorithms = tokenSigningAlgs;
export type SigningAlgorithm = TokenSigningAlg;

export interface SigningKeyInfo {
  kid: string;
  alg: string;
  state: string;
  created_at: string;
  activated_at: string | null;
  retired_at: string | null;
  /** A next key: when the lifecycle job makes it current (KEY_PUBLISH_AHEAD after creation). */
  activates_at?: string;
  /** A retired key: when the lifecycle job removes it (see keyRetention in services/signing-keys.ts). */
  removed_at?: string;
}

/** What a signing key's sealed private JWK is bound to: its own row. */
export function privateJwkContext(kid: string): string {
  return sealContext("SigningKey", kid, "private_jwk");
}

/** Generates a key pair for `alg`; the kid is the RFC 7638 thumbprint. */
export async function generateSigningKey(alg: SigningAlgorithm): Promise<{ kid: string; publicJwk: JWK; privateJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "RS256" ? { modulusLength: 2048 } : alg === "EdDSA" ? { crv: "Ed25519" } : {}) });
  const privateJwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(privateJwk);
  const publicJwk = await exportJWK(publicKey);
  return {
    kid,
    publicJwk: { ...publicJwk, kid, alg, use: "sig" },
    privateJwk: { ...privateJwk, kid, alg, use: "sig" },
  };
}

/** Creates a current key for each algorithm that has none (first start). */
export async function ensureSigningKeys(db: Database, ring: MasterKeyRing): Promise<string[]> {
  const rows = await listSigningKeyRows(db);
  const haveCurrent = new Set(rows.filter((r) => r.state === "current").map((r) => r.alg));
  const wanted = signingAlgorithms.filter((alg) => !haveCurrent.has(alg));
  if (wanted.length === 0) return [];
  const now = new Date();
  const keys = await Promise.all(
    wanted.map(async (alg) => {
      const key = await generateSigningKey(alg);
      return {
        kid: key.kid,
        alg,
        state: "current",
        publicJwk: key.publicJwk,
        privateJwkEncrypted: await ring.encrypt(JSON.stringify(key.privateJwk), privateJwkContext(key.kid)),
        activatedAt: now,
      };
    }),
  );
  return insertMissingCurrentKeys(db, keys);
}

/** A loaded key set: the JWKs for createProvider() and what they are. */
export interface KeySet {
  /** Private JWKs, current keys first; the others with key_ops ["verify"]. */
  keys: JWK[];
  /** Identifies the set by its kids and their states (keySetVersion). */
  version: string;
  /** The algorithms that have a current key. */
  currentAlgs: string[];
  /** kid -> state, for logs. */
  states: Record<string, string>;
}

/**
 * A short fingerprint of a key set: its kids and their states. Every change
 * that matters to oidc-provider (a key added, promoted, retired or removed)
 * changes it; resealing a key with a new master key does not.
 */
export function keySetVersion(keys: Pick<SigningKeyState, "kid" | "state">[]): string {
  const lines = keys.map((k) => `${k.kid}:${k.state}`).sort();
  return createHash("sha256").update(lines.join("\n")).digest("base64url").slice(0, 16);
}

/**
 * The key set for oidc-provider: current keys first, then the others with
 * key_ops ["verify"] so that they are published and verify but never sign
 * (oidc-provider's KeyStore.selectForSign skips a key whose key_ops lack
 * "sign"; RFC 7517 section 4.3). A key that does not open (sealed with a
 * master key not in MASTER_KEYS, or copied from another row) throws
 * MasterKeyError naming the key.
 */
export async function loadKeySet(db: Database, ring: MasterKeyRing): Promise<KeySet> {
  const rows = await listSigningKeyRows(db);
  const order = (row: { state: string }) => (row.state === "current" ? 0 : 1);
  const sorted = [...rows].sort((a, b) => order(a) - order(b));
  const keys = await Promise.all(
    sorted.map(async (row) => {
      let jwk: JWK;
      try {
        jwk = JSON.parse(await ring.decrypt(row.privateJwkEncrypted, privateJwkContext(row.kid))) as JWK;
      } catch (error) {
        if (error instanceof MasterKeyError) throw new MasterKeyError(`signing key ${row.kid}: ${error.message}`);
        throw error;
      }
      return row.state === "current" ? jwk : { ...jwk, key_ops: ["verify"] };
    }),
  );
  return {
    keys,
    version: keySetVersion(rows),
    currentAlgs: [...new Set(rows.filter((r) => r.state === "current").map((r) => r.alg))].sort(),
    states: Object.fromEntries(rows.map((r) => [r.kid, r.state])),
  };
}

/** The private JWKs of loadKeySet(), for callers that need only them. */
export async function loadSigningKeys(db: Database, ring: MasterKeyRing): Promise<JWK[]> {
  return (await loadKeySet(db, ring)).keys;
}

/** The algorithms of the key set that have no current key: nothing can sign them. */
export function missingCurrentAlgs(keySet: Pick<KeySet, "currentAlgs">): SigningAlgorithm[] {
  return signingAlgorithms.filter((alg) => !keySet.currentAlgs.includes(alg));
}

/**
 * The JWKS response's max-age in seconds: a tenth of KEY_PUBLISH_AHEAD, at
 * most 5 minutes, so that a relying party's cached JWKS has the next key long
 * before it signs (the next key is published for KEY_PUBLISH_AHEAD first).
 */
export function jwksMaxAge(publishAheadSeconds: number): number {
  return Math.min(300, Math.floor(publishAheadSeconds / 10));
}

/** The key list shown by `gatehouse keys list`, with the lifecycle's next dates when `schedule` is given. */
export async function listSigningKeys(
  db: Database,
  schedule?: { publishAhead: number; retention: number },
): Promise<SigningKeyInfo[]> {
  const at = (date: Date, seconds: number) => new Date(date.getTime() + seconds * 1000).toISOString();
  return (await listSigningKeyRows(db)).map((row) => ({
    kid: row.kid,
    alg: row.alg,
    state: row.state,
    created_at: row.createdAt.toISOString(),
    activated_at: row.activatedAt?.toISOString() ?? null,
    retired_at: row.retiredAt?.toISOString() ?? null,
    ...(schedule && row.state === "next" && { activates_at: at(row.createdAt, schedule.publishAhead) }),
    ...(schedule && row.state === "retired" && row.retiredAt && { removed_at: at(row.retiredAt, schedule.retention) }),
  }));
}

/**
 * The public JWKS (what `gatehouse keys export` prints): the same keys and
 * members as the jwks_uri serves, key_ops ["verify"] on keys that do not sign.
 */
export async function exportPublicJwks(db: Database): Promise<{ keys: JWK[] }> {
  const rows = await listSigningKeyRows(db);
  return { keys: rows.map((row) => (row.state === "current" ? (row.publicJwk as JWK) : { ...(row.publicJwk as JWK), key_ops: ["verify"] })) };
}
