/** auth/totp.ts: RFC 6238's test vectors, the one-step window, recovery codes. */
import t from "tap";
import { generateRecoveryCode, generateTotpSecret, hashRecoveryCode, matchTotpStep, normalizeRecoveryCode, totpCode, totpStep, totpUri } from "../../src/auth/totp.ts";

// RFC 6238 Appendix B, SHA-1 key "12345678901234567890" (base32 below); its
// 8-digit values, of which a 6-digit code is the last six (RFC 4226 section 5.3).
const rfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const vectors: [number, string][] = [
  [59, "94287082"],
  [1111111109, "07081804"],
  [1111111111, "14050471"],
  [1234567890, "89005924"],
  [2000000000, "69279037"],
];

t.test("RFC 6238 test vectors (SHA-1, 30 s, 6 digits)", async (t) => {
  for (const [seconds, value] of vectors) {
    const step = totpStep(seconds * 1000);
    t.equal(totpCode(rfcSecret, step), value.slice(-6), `T=${seconds}`);
    t.equal(matchTotpStep(rfcSecret, value.slice(-6), seconds * 1000), step, `accepted at T=${seconds}`);
  }
});

t.test("one step of drift either way, no more; six digits only", async (t) => {
  const now = 1_700_000_015_000;
  const step = totpStep(now);
  for (const delta of [-1, 0, 1]) t.equal(matchTotpStep(rfcSecret, totpCode(rfcSecret, step + delta), now), step + delta, `step ${delta >= 0 ? "+" : ""}${delta} accepted as its own step`);
  for (const delta of [-2, 2]) t.equal(matchTotpStep(rfcSecret, totpCode(rfcSecret, step + delta), now), undefined, `step ${delta} refused`);
  const code = totpCode(rfcSecret, step);
  t.equal(matchTotpStep(rfcSecret, `${code.slice(0, 3)} ${code.slice(3)}`, now), step, "a space in the middle is fine");
  for (const bad of ["", "12345", "1234567", "abcdef", `${code}0`, "１２３４５６"]) t.equal(matchTotpStep(rfcSecret, bad, now), undefined, `${JSON.stringify(bad)} refused`);
});

t.test("secrets: 160 random bits in base32; the otpauth URI", async (t) => {
  const secret = generateTotpSecret();
  t.match(secret, /^[A-Z2-7]{32}$/);
  t.not(generateTotpSecret(), secret);
  const uri = new URL(totpUri(secret, "ada@example.com", "id.example.com"));
  t.equal(uri.protocol, "otpauth:");
  t.equal(uri.host, "totp");
  t.equal(uri.searchParams.get("secret"), secret);
  t.equal(uri.searchParams.get("algorithm"), "SHA1");
  t.equal(uri.searchParams.get("digits"), "6");
  t.equal(uri.searchParams.get("period"), "30");
  t.equal(uri.searchParams.get("issuer"), "id.example.com");
});

t.test("recovery codes: 80 bits in groups of four; typed back in any case, with spaces or dashes", async (t) => {
  const codes = Array.from({ length: 50 }, generateRecoveryCode);
  for (const code of codes) t.match(code, /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/);
  t.equal(new Set(codes).size, codes.length, "all different");
  const code = codes[0]!;
  t.equal(normalizeRecoveryCode(` ${code.toUpperCase().replace(/-/g, " ")} `), code.replace(/-/g, ""));
  t.equal(hashRecoveryCode(code.toUpperCase()), hashRecoveryCode(code));
  t.match(hashRecoveryCode(code), /^[0-9a-f]{64}$/);
  t.not(hashRecoveryCode(code), hashRecoveryCode(codes[1]!));
});
