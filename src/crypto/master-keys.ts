/**
 * The master key ring: encrypts signing keys and client secrets at rest
 * (SPEC section 6). Ciphertexts are compact JWEs (alg "dir", enc "A256GCM")
 * whose `kid` header names the master key that sealed them, so MASTER_KEYS can
 * be rotated: the newest key seals, every listed key opens.
 */
import { createHash, hkdfSync, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from "jose";
import type { Config } from "../config.ts";

export interface MasterKeyRing {
  /** Seals `plaintext` with the newest master key. */
  encrypt(plaintext: string): Promise<string>;
  /** Opens a value sealed by any key of the ring; throws MasterKeyError otherwise. */
  decrypt(jwe: string): Promise<string>;
  /** Derives a stable secret for `purpose` from the newest master key (HKDF-SHA256). */
  derive(purpose: string): string;
  /**
   * Derives a 32-byte key for `purpose` from the master key `kid` (default:
   * the newest), for values that must say which master key keyed them (the
   * audit chain). Throws MasterKeyError for a kid that is not in the ring.
   */
  deriveKey(purpose: string, kid?: string): DerivedKey;
  /** The ring's key ids, newest first. */
  readonly kids: readonly string[];
}

export interface DerivedKey {
  /** The id of the master key it was derived from. */
  kid: string;
  key: Buffer;
}

export class MasterKeyError extends Error {
  readonly code = "master_key_error";
  override readonly name = "MasterKeyError";
}

function kidOf(key: Buffer): string {
  return createHash("sha256").update(key).digest("base64url").slice(0, 16);
}

function hkdf(key: Uint8Array, purpose: string): Buffer {
  return Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), `gatehouse:${purpose}`, 32));
}

/** Builds a ring from raw 32-byte keys, newest first. */
export function createMasterKeyRing(keys: readonly Buffer[]): MasterKeyRing {
  if (keys.length === 0) throw new MasterKeyError("no master key");
  const entries = keys.map((key) => ({ kid: kidOf(key), key: new Uint8Array(key) }));
  const newest = entries[0]!;
  return {
    kids: entries.map((e) => e.kid),
    async encrypt(plaintext) {
      return new CompactEncrypt(new TextEncoder().encode(plaintext))
        .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid: newest.kid })
        .encrypt(newest.key);
    },
    async decrypt(jwe) {
      let kid: unknown;
      try {
        kid = decodeProtectedHeader(jwe).kid;
      } catch {
        throw new MasterKeyError("not a sealed value");
      }
      const entry = entries.find((e) => e.kid === kid);
      if (!entry) throw new MasterKeyError(`sealed with master key ${String(kid)}, which is not in MASTER_KEYS`);
      const { plaintext } = await compactDecrypt(jwe, entry.key, {
        keyManagementAlgorithms: ["dir"],
        contentEncryptionAlgorithms: ["A256GCM"],
      });
      return new TextDecoder().decode(plaintext);
    },
    derive(purpose) {
      return hkdf(newest.key, purpose).toString("base64url");
    },
    deriveKey(purpose, kid = newest.kid) {
      const entry = entries.find((e) => e.kid === kid);
      if (!entry) throw new MasterKeyError(`master key ${kid} is not in MASTER_KEYS`);
      return { kid, key: hkdf(entry.key, purpose) };
    },
  };
}

/**
 * Loads the ring from MASTER_KEYS, or, outside production when it is unset,
 * from KEYS_DIR/master.key, generating that file (mode 0600) on first use.
 */
export function loadMasterKeyRing(config: Pick<Config, "masterKeys" | "keysDir" | "production">): MasterKeyRing {
  if (config.masterKeys) return createMasterKeyRing(config.masterKeys);
  if (config.production) throw new MasterKeyError("MASTER_KEYS is required in production");
  const file = join(config.keysDir, "master.key");
  mkdirSync(config.keysDir, { recursive: true });
  try {
    // "wx" fails if the file exists: two processes starting at once keep one key.
    writeFileSync(file, randomBytes(32).toString("base64") + "\n", { flag: "wx", mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const key = Buffer.from(readFileSync(file, "utf8").trim(), "base64");
  if (key.length !== 32) throw new MasterKeyError(`${file} does not hold a base64-encoded 32-byte key`);
  return createMasterKeyRing([key]);
}

/** The cookie signing keys: COOKIE_SECRETS, or outside production a key derived from the master key. */
export function cookieKeysFor(config: Pick<Config, "cookieSecrets">, ring: MasterKeyRing): string[] {
  return config.cookieSecrets ? [...config.cookieSecrets] : [ring.derive("cookie-keys")];
}
