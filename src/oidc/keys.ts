/**
 * Signing keys (SPEC section 6). Keys live in the database with their private
 * JWK sealed by the master key ring. A key is `next` (published, signs
 * nothing), `current` (signs) or `retired` (published, verifies only).
 * oidc-provider takes its keys at construction, so loadSigningKeys() returns
 * exactly what createProvider() needs, and a change of key set means building
 * a new provider.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from "jose";
import type { Database } from "../db/database.ts";
import { insertMissingCurrentKeys, listSigningKeyRows, type SigningKeyRow } from "../db/signing-keys.ts";
import { sealContext, type MasterKeyRing } from "../crypto/master-keys.ts";
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

/** Creates a current ES256 and RS256 key when the database has none (first start). */
export async function ensureSigningKeys(db: Database, ring: MasterKeyRing): Promise<string[]> {
  const rows = await listSigningKeyRows(db.prisma);
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
  return insertMissingCurrentKeys(db.prisma, db.provider, keys);
}

/**
 * The private JWKs for oidc-provider: current keys first, then the others with
 * key_ops ["verify"] so that they are published and verify but never sign.
 */
export async function loadSigningKeys(db: Database, ring: MasterKeyRing): Promise<JWK[]> {
  const rows = await listSigningKeyRows(db.prisma);
  const order = (row: SigningKeyRow) => (row.state === "current" ? 0 : 1);
  const sorted = [...rows].sort((a, b) => order(a) - order(b));
  return Promise.all(
    sorted.map(async (row) => {
      const jwk = JSON.parse(await ring.decrypt(row.privateJwkEncrypted, privateJwkContext(row.kid))) as JWK;
      return row.state === "current" ? jwk : { ...jwk, key_ops: ["verify"] };
    }),
  );
}

/** The key list shown by `gatehouse keys list`. */
export async function listSigningKeys(db: Database): Promise<SigningKeyInfo[]> {
  return (await listSigningKeyRows(db.prisma)).map((row) => ({
    kid: row.kid,
    alg: row.alg,
    state: row.state,
    created_at: row.createdAt.toISOString(),
    activated_at: row.activatedAt?.toISOString() ?? null,
    retired_at: row.retiredAt?.toISOString() ?? null,
  }));
}

/** The public JWKS (what `gatehouse keys export` prints and the jwks_uri serves). */
export async function exportPublicJwks(db: Database): Promise<{ keys: JWK[] }> {
  const rows = await listSigningKeyRows(db.prisma);
  return { keys: rows.map((row) => row.publicJwk as JWK) };
}
