/**
 * What the database keeps in place of a credential (an opaque token, a code,
 * a session or interaction id, a user code): its keyed hash, HMAC-SHA256 with
 * a key derived from the master key. A row is found by hashing the value the
 * client presents, so a copy of the database, or a backup, gives no working
 * credential, and without the master key the hashes cannot even be checked
 * against guesses (RFC 6819 section 5.1.4.1.3, "No Cleartext Storage of
 * Credentials").
 *
 * A field that must come back when the credential is presented (another
 * credential a row refers to) is sealed with AES-256-GCM under a key derived
 * from the credential itself: only whoever holds the credential can open it.
 *
 * One key per master key, newest first: rows written before a master key
 * rotation are still found while the older master key is configured.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import type { MasterKeyRing } from "./master-keys.ts";

/** The HKDF purpose of the hashing keys (see MasterKeyRing.derive). */
export const storedIdPurpose = "stored-credential-ids";

export interface StoredIds {
  /** The stored form of `credential` for a new row (newest key), base64url. */
  of(credential: string): string;
  /** Every stored form `credential` may have, newest key first. */
  candidates(credential: string): string[];
  /** Seals `plaintext` so that only a holder of `credential` can open it. */
  seal(credential: string, plaintext: string): string;
  /** Opens what seal() made with the same credential; throws otherwise. */
  open(credential: string, sealed: string): string;
}

export class StoredIdError extends Error {
  readonly code = "stored_id_error";
  override readonly name = "StoredIdError";
}

const ivLength = 12;
const tagLength = 16;

/** Builds StoredIds from secrets (ring.deriveAll(storedIdPurpose)), newest first. */
export function createStoredIds(keys: readonly string[]): StoredIds {
  if (keys.length === 0) throw new StoredIdError("no key for stored ids");
  // "id:" and "seal:" keep the two uses of one key apart.
  const mac = (key: string, use: "id" | "seal", credential: string) => createHmac("sha256", key).update(`${use}:${credential}`).digest();
  return {
    of(credential) {
      return mac(keys[0]!, "id", credential).toString("base64url");
    },
    candidates(credential) {
      return keys.map((key) => mac(key, "id", credential).toString("base64url"));
    },
    seal(credential, plaintext) {
      const iv = randomBytes(ivLength);
      const cipher = createCipheriv("aes-256-gcm", mac(keys[0]!, "seal", credential), iv);
      const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url");
    },
    open(credential, sealed) {
      const bytes = Buffer.from(sealed, "base64url");
      const iv = bytes.subarray(0, ivLength);
      const tag = bytes.subarray(ivLength, ivLength + tagLength);
      const body = bytes.subarray(ivLength + tagLength);
      for (const key of keys) {
        try {
          const decipher = createDecipheriv("aes-256-gcm", mac(key, "seal", credential), iv);
          decipher.setAuthTag(tag);
          return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
        } catch {
          // another master key's, or altered: try the next key
        }
      }
      throw new StoredIdError("a sealed field does not open with this credential");
    },
  };
}

/** StoredIds keyed by the master key ring. */
export function storedIdsFor(ring: MasterKeyRing): StoredIds {
  return createStoredIds(ring.deriveAll(storedIdPurpose));
}
