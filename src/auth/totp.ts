/**
 * TOTP (RFC 6238) with the parameters authenticator apps expect: HMAC-SHA-1,
 * 6 digits, 30-second steps; one step of clock drift either way accepted
 * (RFC 6238 section 5.2). Pure helpers over otpauth: storage and replay
 * protection are services/mfa.ts's.
 */
import { createHash, randomBytes } from "node:crypto";
import { Secret, TOTP } from "otpauth";

export const totpPeriod = 30;
const totpDigits = 6;
const totpWindow = 1;

/** A new secret: 160 random bits (RFC 4226 section 4, R6), base32 for display and otpauth:// URIs. */
export function generateTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

function totpOf(secret: string, label = "", issuer = ""): TOTP {
  return new TOTP({ issuer, label, algorithm: "SHA1", digits: totpDigits, period: totpPeriod, secret: Secret.fromBase32(secret) });
}

/** The otpauth:// URI that the QR code carries (Key Uri Format of Google Authenticator). */
export function totpUri(secret: string, label: string, issuer: string): string {
  return totpOf(secret, label, issuer).toString();
}

/** The time step (RFC 6238 section 4.2, T) of `timestamp`. */
export function totpStep(timestamp = Date.now()): number {
  return Math.floor(timestamp / 1000 / totpPeriod);
}

/** The code for step `step` (tests and the set-up page's check). */
export function totpCode(secret: string, step: number): string {
  return totpOf(secret).generate({ timestamp: step * totpPeriod * 1000 });
}

/**
 * The time step whose code `code` is, within one step of now, or undefined.
 * otpauth compares in constant time; anything but six digits is refused first.
 */
export function matchTotpStep(secret: string, code: string, timestamp = Date.now()): number | undefined {
  const token = code.replace(/\s+/g, "");
  if (!/^\d{6}$/.test(token)) return undefined;
  const delta = totpOf(secret).validate({ token, timestamp, window: totpWindow });
  return delta === null ? undefined : totpStep(timestamp) + delta;
}

const recoveryAlphabet = "abcdefghijklmnopqrstuvwxyz234567";

/** A recovery code: 16 characters of base32 (80 random bits), shown in groups of four. */
export function generateRecoveryCode(): string {
  const bytes = randomBytes(16);
  const chars = Array.from(bytes, (b) => recoveryAlphabet[b & 31]).join("");
  return chars.match(/.{4}/g)!.join("-");
}

/** How a recovery code is typed back: case, spaces and dashes do not matter. */
export function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]+/g, "");
}

/**
 * The stored form of a recovery code: SHA-256 (hex) of its normalised text.
 * A plain hash suffices because the code carries 80 random bits, so a leaked
 * hash cannot be reversed by guessing (unlike a password, which needs a slow
 * hash); and it does not depend on the master key, so master key rotation
 * leaves recovery codes working.
 */
export function hashRecoveryCode(code: string): string {
  return createHash("sha256").update(normalizeRecoveryCode(code)).digest("hex");
}
