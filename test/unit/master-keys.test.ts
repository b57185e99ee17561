import t from "tap";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { CompactEncrypt, decodeProtectedHeader } from "jose";
import { createMasterKeyRing, loadMasterKeyRing, sealContext } from "../../src/crypto/master-keys.ts";

const clientA = sealContext("Client", "client-a", "client_secret");
const clientB = sealContext("Client", "client-b", "client_secret");

t.test("a sealed value opens with the same ring and is not plaintext", async (t) => {
  const ring = createMasterKeyRing([randomBytes(32)]);
  const sealed = await ring.encrypt("s3cret value", clientA);
  t.notMatch(sealed, /s3cret/);
  t.equal(sealed.split(".").length, 5, "a compact JWE");
  t.equal(await ring.decrypt(sealed, clientA), "s3cret value");
});

t.test("master key rotation: the newest key seals, older keys still open", async (t) => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const sealedByOld = await createMasterKeyRing([oldKey]).encrypt("legacy", clientA);
  const rotated = createMasterKeyRing([newKey, oldKey]);
  t.equal(await rotated.decrypt(sealedByOld, clientA), "legacy");
  const sealedByNew = await rotated.encrypt("fresh", clientA);
  await t.rejects(createMasterKeyRing([oldKey]).decrypt(sealedByNew, clientA), { code: "master_key_error" }, "a ring without the key cannot open it");
});

t.test("a tampered ciphertext is refused", async (t) => {
  const ring = createMasterKeyRing([randomBytes(32)]);
  const parts = (await ring.encrypt("value", clientA)).split(".");
  parts[3] = parts[3]!.slice(0, -2) + (parts[3]!.endsWith("AA") ? "BB" : "AA");
  await t.rejects(ring.decrypt(parts.join("."), clientA));
  await t.rejects(ring.decrypt("not a jwe", clientA), { code: "master_key_error" });
});

t.test("derived secrets are stable per key and purpose", async (t) => {
  const key = randomBytes(32);
  t.equal(createMasterKeyRing([key]).derive("a"), createMasterKeyRing([key]).derive("a"));
  t.not(createMasterKeyRing([key]).derive("a"), createMasterKeyRing([key]).derive("b"));
});

t.test("outside production the development key is created once in KEYS_DIR and reused", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-keys-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = loadMasterKeyRing({ keysDir: dir, masterKeys: undefined, production: false });
  const content = readFileSync(join(dir, "master.key"), "utf8");
  t.equal(Buffer.from(content.trim(), "base64").length, 32);
  t.equal(statSync(join(dir, "master.key")).mode & 0o777, 0o600);
  const second = loadMasterKeyRing({ keysDir: dir, masterKeys: undefined, production: false });
  t.same(second.kids, first.kids, "the same key on the next start");
  t.equal(await second.decrypt(await first.encrypt("x", clientA), clientA), "x");
  t.throws(() => loadMasterKeyRing({ keysDir: dir, masterKeys: undefined, production: true }), { code: "master_key_error" });
});

t.test("a sealed value is bound to its context: another row's value does not open", async (t) => {
  const ring = createMasterKeyRing([randomBytes(32)]);
  const sealed = await ring.encrypt("secret of A", clientA);
  t.equal(decodeProtectedHeader(sealed).ctx, "Client/client-a/client_secret", "the context is in the protected header (the AES-GCM additional data)");
  await t.rejects(
    ring.decrypt(sealed, clientB),
    { code: "master_key_error", message: /Client\/client-a\/client_secret.*Client\/client-b\/client_secret/ },
    "copied onto client B's row it is refused, naming both contexts",
  );
  await t.rejects(ring.decrypt(sealed, sealContext("SigningKey", "client-a", "private_jwk")), { code: "master_key_error" }, "another table or purpose");
});

t.test("rewriting the context in the header breaks the seal", async (t) => {
  const ring = createMasterKeyRing([randomBytes(32)]);
  const [header, ...rest] = (await ring.encrypt("secret of A", clientA)).split(".");
  const forged = { ...(JSON.parse(Buffer.from(header!, "base64url").toString()) as object), ctx: clientB };
  const jwe = [Buffer.from(JSON.stringify(forged)).toString("base64url"), ...rest].join(".");
  await t.rejects(ring.decrypt(jwe, clientB), { code: "master_key_error" }, "the header is authenticated data: the tag no longer matches");
});

t.test("a value sealed without a context is refused", async (t) => {
  const key = randomBytes(32);
  const kid = createHash("sha256").update(key).digest("base64url").slice(0, 16);
  // What encrypt() wrote before values were bound to their row.
  const legacy = await new CompactEncrypt(new TextEncoder().encode("old secret"))
    .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid })
    .encrypt(new Uint8Array(key));
  const ring = createMasterKeyRing([key]);
  t.same(ring.kids, [kid]);
  await t.rejects(ring.decrypt(legacy, clientA), { code: "master_key_error", message: /without a context/ });
});

t.test("the context is required and must be a non-empty string", async (t) => {
  const ring = createMasterKeyRing([randomBytes(32)]);
  await t.rejects((ring.encrypt as (p: string, c?: string) => Promise<string>)("x"), { code: "master_key_error" });
  await t.rejects(ring.encrypt("x", ""), { code: "master_key_error" });
  const sealed = await ring.encrypt("x", clientA);
  await t.rejects((ring.decrypt as (j: string, c?: string) => Promise<string>)(sealed), { code: "master_key_error" });
});

t.test("sealContext names the table, the row and the purpose, unambiguously", async (t) => {
  t.equal(sealContext("SigningKey", "kid-1", "private_jwk"), "SigningKey/kid-1/private_jwk");
  t.not(sealContext("Client", "a/b", "c"), sealContext("Client", "a", "b/c"), "a slash in an id cannot shift the parts");
});
