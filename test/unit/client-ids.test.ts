/**
 * New client ids (services/clients.ts): 128 random bits in base64url that
 * never start with "-", so that the gatehouse command can take one after a
 * flag (`--introspection-client ID`; Node's parseArgs refuses a dash there).
 */
import t from "tap";
import { newClientId } from "../../src/services/clients.ts";

t.test("a draw that would start with a dash is taken again", async (t) => {
  // 0xf8 is 111110xx: the first base64url character is number 62, "-".
  const draws = [Buffer.alloc(16, 0xf8), Buffer.alloc(16, 0xfb), Buffer.alloc(16, 0x00)];
  const random = (size: number) => {
    t.equal(size, 16, "128 bits a draw");
    return draws.shift()!;
  };
  t.equal(Buffer.alloc(16, 0xf8).toString("base64url")[0], "-", "the first draw would start with a dash");
  t.equal(newClientId(random), Buffer.alloc(16, 0).toString("base64url"), "the first draw without one is used");
  t.equal(draws.length, 0, "three draws");
});

t.test("real ids: 22 base64url characters, none starting with a dash", async (t) => {
  const ids = Array.from({ length: 2_000 }, () => newClientId());
  t.ok(ids.every((id) => /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(id)), "the shape of every id");
  t.equal(new Set(ids).size, ids.length, "all different");
});
