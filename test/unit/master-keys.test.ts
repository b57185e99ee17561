import t from "tap";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createMasterKeyRing, loadMasterKeyRing } from "../../src/crypto/master-keys.ts";

t.test("a sealed value opens with the same ring and is not plaintext", async (t) => {
  const ring = createMasterKeyRing([randomBytes(32)]);
  const sealed = await ring.encrypt("s3cret value");
  t.notMatch(sealed, /s3cret/);
  t.equal(sealed.split(".").length, 5, "a compact JWE");
  t.equal(await ring.decrypt(sealed), "s3cret value");
});

t.test("master key rotation: the newest key seals, older keys still open", async (t) => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const sealedByOld = await createMasterKeyRing([oldKey]).encrypt("legacy");
  const rotated = createMasterKeyRing([newKey, oldKey]);
  t.equal(await rotated.decrypt(sealedByOld), "legacy");
  const sealedByNew = await rotated.encrypt("fresh");
  await t.rejects(createMasterKeyRing([oldKey]).decrypt(sealedByNew), { code: "master_key_error" }, "a ring without the key cannot open it");
});

t.test("a tampered ciphertext is refused", async (t) => {
  const ring = createMasterKeyRing([randomBytes(32)]);
  const parts = (await ring.encrypt("value")).split(".");
  parts[3] = parts[3]!.slice(0, -2) + (parts[3]!.endsWith("AA") ? "BB" : "AA");
  await t.rejects(ring.decrypt(parts.join(".")));
  await t.rejects(ring.decrypt("not a jwe"), { code: "master_key_error" });
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
  t.equal(await second.decrypt(await first.encrypt("x")), "x");
  t.throws(() => loadMasterKeyRing({ keysDir: dir, masterKeys: undefined, production: true }), { code: "master_key_error" });
});
