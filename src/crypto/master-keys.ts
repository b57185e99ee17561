/**
 * The master key ring: encrypts signing keys and client secrets at rest
 * (README, "Production", "Secrets"). Ciphertexts are compact JWEs (alg "dir", enc
 * "A256GCM", RFC 7516) whose `kid` header names the master key that sealed
 * them, so MASTER_KEYS can be rotated: the newest key seals, every listed key
 * opens. Each value is bound to what it protects by a `ctx` header (table, row
 * id, field): the protected header is AES-GCM's additional authenticated data
 * (RFC 7516 section 5.1), so a value copied onto another row does not open.
 */
import { createHash, hkdfSync, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from "jose";
import type { Config } from "../config.ts";

export interface MasterKeyRing {
  /** Seals `plaintext` with the newest master key, bound to `context` (see sealContext). */
  encrypt(plaintext: string, context: string): Promise<string>;
  /**
   * Opens a value sealed by any key of the ring for exactly `context`; throws
   * MasterKeyError otherwise, and for a value sealed without a context.
   */
  decrypt(jwe: string, context: string): Promise<string>;
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

/**
 * The context a sealed value is bound to: the table, the row's id and the
 * field, e.g. "Client/<client id>/client_secret". The id is percent-encoded
 * so that no id can make two contexts equal.
 */
export function sealContext(table: string, rowId: string, field: string): string {
  return `${table}/${encodeURIComponent(rowId)}/${field}`;
}

function requireContext(context: unknown): string {
  if (typeof context !== "string" || context === "") throw new MasterKeyError("a sealed value needs a context (the table, row and field it protects)");
  return context;
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
    async encrypt(plaintext, context) {
      // The protected header, ctx included, is the AES-GCM additional data.
      return new CompactEncrypt(new TextEncoder().encode(plaintext))
        .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid: newest.kid, ctx: requireContext(context) })
        .encrypt(newest.key);
    },
    async decrypt(jwe, context) {
      const expected = requireContext(context);
      let header: ReturnType<typeof decodeProtectedHeader>;
      try {
        header = decodeProtectedHeader(jwe);
      } catch {
        throw new MasterKeyError("not a sealed value");
      }
      if (header.ctx === undefined) throw new MasterKeyError(`value for ${expected} was sealed without a context: refused`);
      if (header.ctx !== expected) throw new MasterKeyError(`value sealed for ${String(header.ctx)} found in ${expected}: refused`);
      const entry = entries.find((e) => e.kid === header.kid);
      if (!entry) throw new MasterKeyError(`sealed with master key ${String(header.kid)}, which is not in MASTER_KEYS`);
      try {
        const { plaintext } = await compactDecrypt(jwe, entry.key, {
          keyManagementAlgorithms: ["dir"],
          contentEncryptionAlgorithms: ["A256GCM"],
        });
        return new TextDecoder().decode(plaintext);
      } catch {
        throw new MasterKeyError(`value for ${expected} does not open: it was altered`);
      }
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
