/**
 * Validation of a private JWKS brought from another identity provider
 * (`gatehouse keys import`). Every key must be a private signing key of the
 * key set's kinds: RSA (RS256, at least 2048 bits, with its CRT parameters,
 * which oidc-provider requires), EC P-256 (ES256) or OKP Ed25519 (EdDSA),
 * and its private part must match its public part (checked by signing and
 * verifying). The kid is kept (RFC 7638 thumbprint when it has none). Any
 * problem is one line naming the key; nothing is imported unless every key
 * passes.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { calculateJwkThumbprint, type JWK } from "jose";
import { signingAlgorithms, type SigningAlgorithm } from "./keys.ts";

export class KeyImportError extends Error {
  readonly code = "invalid_key";
  override readonly name = "KeyImportError";
}

export interface ImportedKey {
  kid: string;
  alg: SigningAlgorithm;
  publicJwk: JWK;
  privateJwk: JWK;
}

const members: Record<string, { public: string[]; private: string[] }> = {
  RSA: { public: ["n", "e"], private: ["d", "p", "q", "dp", "dq", "qi"] },
  EC: { public: ["crv", "x", "y"], private: ["d"] },
  OKP: { public: ["crv", "x"], private: ["d"] },
};

/** The algorithm a key is for: its kty and curve decide; an `alg` it names must agree. */
function algorithmOf(jwk: Record<string, unknown>, fail: (why: string) => never): SigningAlgorithm {
  const inferred: SigningAlgorithm | undefined =
    jwk.kty === "RSA" ? "RS256" : jwk.kty === "EC" && jwk.crv === "P-256" ? "ES256" : jwk.kty === "OKP" && jwk.crv === "Ed25519" ? "EdDSA" : undefined;
  if (!inferred) {
    if (jwk.kty === "oct") fail("is a symmetric (oct) key: only RSA, EC P-256 and Ed25519 private keys can sign tokens that relying parties verify");
    if (jwk.kty === "EC" || jwk.kty === "OKP") fail(`uses curve ${JSON.stringify(jwk.crv)}, which is not supported (EC P-256 or OKP Ed25519)`);
    fail(`has key type ${JSON.stringify(jwk.kty)}, which is not supported (RSA, EC P-256 or OKP Ed25519)`);
  }
  // "Ed25519" is the fully-specified name of EdDSA with Ed25519 (RFC 9864).
  const named = jwk.alg === "Ed25519" ? "EdDSA" : jwk.alg;
  if (named !== undefined && named !== inferred) {
    fail(`names alg ${JSON.stringify(jwk.alg)}, but a ${String(jwk.kty)} key here signs ${inferred} only (supported: ${signingAlgorithms.join(", ")})`);
  }
  return inferred;
}

/** Signs a random message with the private key and verifies it with the public members alone. */
function privateMatchesPublic(privateKey: KeyObject, publicJwk: JWK, alg: SigningAlgorithm): boolean {
  const message = randomBytes(32);
  const publicKey = createPublicKey({ key: publicJwk as never, format: "jwk" });
  const digest = alg === "EdDSA" ? null : "sha256";
  const options = alg === "ES256" ? { dsaEncoding: "ieee-p1363" as const } : {};
  const signature = sign(digest, message, { key: privateKey, ...options });
  return verify(digest, message, { key: publicKey, ...options }, signature);
}

/** Checks one key and returns it in the form Gatehouse stores. */
async function importKey(value: unknown, index: number): Promise<ImportedKey> {
  const label = (kid?: unknown) => `key ${index}${typeof kid === "string" ? ` (kid ${JSON.stringify(kid.slice(0, 100))})` : ""}`;
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new KeyImportError(`${label()} is not a JSON Web Key object`);
  const jwk = value as Record<string, unknown>;
  const fail = (why: string): never => {
    throw new KeyImportError(`${label(jwk.kid)} ${why}`);
  };
  if (jwk.kid !== undefined && (typeof jwk.kid !== "string" || !/^[\x21-\x7e]{1,200}$/.test(jwk.kid))) fail("has a kid that is not 1 to 200 printable ASCII characters");
  const alg = algorithmOf(jwk, fail);
  if (jwk.use !== undefined && jwk.use !== "sig") fail(`is for use ${JSON.stringify(jwk.use)}: only signing keys (use "sig") can be imported`);
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes("sign"))) fail('has key_ops without "sign": it cannot sign');
  if (jwk.oth !== undefined) fail("is a multi-prime RSA key (oth), which is not supported");
  const spec = members[String(jwk.kty)]!;
  for (const name of spec.public) if (typeof jwk[name] !== "string" || jwk[name] === "") fail(`lacks its public member "${name}"`);
  if (jwk.d === undefined) fail('is a public key only: import needs the private key (member "d")');
  for (const name of spec.private) {
    if (typeof jwk[name] !== "string" || jwk[name] === "") fail(`lacks its private member "${name}"${name === "d" ? "" : " (RSA keys need their CRT parameters p, q, dp, dq and qi)"}`);
  }

  const picked = (names: string[]) => Object.fromEntries(names.map((name) => [name, jwk[name] as string]));
  const publicParts = { kty: jwk.kty as string, ...picked(spec.public) } as JWK;
  const kid = (jwk.kid as string | undefined) ?? (await calculateJwkThumbprint(publicParts));
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: { ...publicParts, ...picked(spec.private) } as never, format: "jwk" });
  } catch {
    fail("is not a valid private key (its members do not form a key)");
  }
  if (alg === "RS256" && (privateKey!.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) fail("is an RSA key shorter than 2048 bits");
  let matches = false;
  try {
    matches = privateMatchesPublic(privateKey!, publicParts, alg);
  } catch {
    matches = false;
  }
  if (!matches) fail("has a private part that does not match its public part");

  return {
    kid,
    alg,
    publicJwk: { ...publicParts, kid, alg, use: "sig" },
    privateJwk: { ...publicParts, ...picked(spec.private), kid, alg, use: "sig" },
  };
}

/**
 * Parses and checks a private JWKS ({"keys": [...]}, at most 20 keys, no
 * repeated kid). Throws KeyImportError with one line naming the first
 * problem.
 */
export async function parsePrivateJwks(text: string): Promise<ImportedKey[]> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new KeyImportError('expected a private JSON Web Key Set on stdin: {"keys": [...]}, which is not valid JSON');
  }
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!value || typeof value !== "object" || !Array.isArray(keys)) throw new KeyImportError('expected a private JSON Web Key Set on stdin: {"keys": [...]}');
  if (keys.length === 0) throw new KeyImportError("the key set is empty: nothing to import");
  if (keys.length > 20) throw new KeyImportError(`the key set has ${keys.length} keys: import at most 20 at a time`);
  const imported: ImportedKey[] = [];
  for (const [index, key] of keys.entries()) imported.push(await importKey(key, index));
  const seen = new Set<string>();
  for (const key of imported) {
    if (seen.has(key.kid)) throw new KeyImportError(`kid ${JSON.stringify(key.kid)} appears more than once in the key set`);
    seen.add(key.kid);
  }
  return imported;
}
