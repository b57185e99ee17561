import t from "tap";
import { createHmac, randomBytes } from "node:crypto";
import { createMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { createStoredIds, storedIdPurpose, storedIdsFor } from "../../src/crypto/stored-ids.ts";

const key = () => randomBytes(32).toString("base64url");

t.test("a stored id is the HMAC-SHA256 of the credential under the derived key, stable and keyed", async (t) => {
  const k = key();
  const ids = createStoredIds([k]);
  const stored = ids.of("a-session-id");
  t.equal(stored, createHmac("sha256", k).update("id:a-session-id").digest("base64url"));
  t.equal(createStoredIds([k]).of("a-session-id"), stored, "the same on every instance");
  t.not(createStoredIds([key()]).of("a-session-id"), stored, "another key gives another id");
  t.not(ids.of("a-session-iD"), stored);
  t.notMatch(stored, /session/);
});

t.test("candidates: one per key, newest first", async (t) => {
  const [newer, older] = [key(), key()];
  const rotated = createStoredIds([newer, older]);
  t.same(rotated.candidates("token"), [createStoredIds([newer]).of("token"), createStoredIds([older]).of("token")]);
  t.equal(rotated.of("token"), createStoredIds([newer]).of("token"), "new rows use the newest key");
});

t.test("the keys come from the master key ring", async (t) => {
  const ring = createMasterKeyRing([randomBytes(32), randomBytes(32)]);
  t.same(storedIdsFor(ring).candidates("x"), createStoredIds(ring.deriveAll(storedIdPurpose)).candidates("x"));
  t.equal(ring.deriveAll(storedIdPurpose)[0], ring.derive(storedIdPurpose), "derive is the newest of deriveAll");
});

t.test("a sealed value opens only with the credential it was sealed under", async (t) => {
  const ids = createStoredIds([key()]);
  const sealed = ids.seal("interaction-uid", "https://idp.example/auth/interaction-uid");
  t.notMatch(sealed, /interaction-uid/);
  t.equal(ids.open("interaction-uid", sealed), "https://idp.example/auth/interaction-uid");
  t.not(ids.seal("interaction-uid", "x"), ids.seal("interaction-uid", "x"), "a fresh IV each time");
  t.throws(() => ids.open("another-uid", sealed), { code: "stored_id_error" });
  t.throws(() => createStoredIds([key()]).open("interaction-uid", sealed), { code: "stored_id_error" }, "or another key");
  const altered = sealed.slice(0, -2) + (sealed.endsWith("AA") ? "BB" : "AA");
  t.throws(() => ids.open("interaction-uid", altered), { code: "stored_id_error" });
});

t.test("a value sealed under an older key still opens after a rotation", async (t) => {
  const [newer, older] = [key(), key()];
  const sealed = createStoredIds([older]).seal("c", "v");
  t.equal(createStoredIds([newer, older]).open("c", sealed), "v");
});

t.test("no key is refused", async (t) => {
  t.throws(() => createStoredIds([]), { code: "stored_id_error" });
});
