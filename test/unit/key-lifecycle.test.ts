/**
 * The signing key lifecycle's decisions, without a database: when a next key
 * becomes current, what is retired and removed, when a rotation is due, and
 * how long relying parties may cache the JWKS.
 */
import t from "tap";
import type { SigningKeyState } from "../../src/db/signing-keys.ts";
import { maxResourceAccessTokenTtl } from "../../src/scopes.ts";
import { hasChanges, keyRetention, planKeyLifecycle, type KeyPolicy } from "../../src/services/signing-keys.ts";
import { jwksMaxAge, keySetVersion } from "../../src/oidc/keys.ts";

const hour = 3600;
const day = 24 * hour;
const now = new Date("2030-01-10T00:00:00Z");
const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000);
const policy: KeyPolicy = { publishAhead: day, rotationInterval: 90 * day, retention: 14 * day };

function key(kid: string, alg: string, state: string, created: number, extra: Partial<SigningKeyState> = {}): SigningKeyState {
  return { kid, alg, state, createdAt: ago(created), activatedAt: state === "current" ? ago(created) : null, retiredAt: null, ...extra };
}

/** A current key for each algorithm, `created` seconds old. */
const fullSet = (created: number) => ["RS256", "ES256", "EdDSA"].map((alg) => key(`${alg}-cur`, alg, "current", created));
const kids = (keys: { kid: string }[]) => keys.map((k) => k.kid).sort();

t.test("a fresh key set: nothing is due", async (t) => {
  const changes = planKeyLifecycle(fullSet(hour), now, policy);
  t.notOk(hasChanges(changes));
});

t.test("a next key becomes current once published for KEY_PUBLISH_AHEAD, and the current key is retired", async (t) => {
  const young = [...fullSet(10 * day), key("rs-next", "RS256", "next", day - 60)];
  t.notOk(hasChanges(planKeyLifecycle(young, now, policy)), "published 23h59m: not yet");
  const ready = [...fullSet(10 * day), key("rs-next", "RS256", "next", day)];
  const changes = planKeyLifecycle(ready, now, policy);
  t.same(kids(changes.activate), ["rs-next"]);
  t.same(kids(changes.retire), ["RS256-cur"]);
  t.same(changes.create, [], "no rotation: the new key is young");
});

t.test("of several due next keys the newest wins and the older ones are retired unused", async (t) => {
  const keys = [...fullSet(10 * day), key("old-next", "ES256", "next", 3 * day), key("new-next", "ES256", "next", 2 * day), key("newest", "ES256", "next", hour)];
  const changes = planKeyLifecycle(keys, now, policy);
  t.same(kids(changes.activate), ["new-next"]);
  t.same(kids(changes.retire), ["ES256-cur", "old-next"]);
  t.notOk(changes.retire.some((k) => k.kid === "newest"), "a next key not yet published long enough stays next");
});

t.test("an algorithm with no current key gets one at once: its next key, or a new key", async (t) => {
  const withNext = [key("rs-next", "RS256", "next", 60), ...fullSet(hour).filter((k) => k.alg !== "RS256")];
  t.same(kids(planKeyLifecycle(withNext, now, policy).activate), ["rs-next"], "the next key is promoted without waiting");
  const without = fullSet(hour).filter((k) => k.alg !== "EdDSA");
  t.same(planKeyLifecycle(without, now, policy).create, [{ alg: "EdDSA", state: "current" }]);
});

t.test("a rotation is due KEY_ROTATION_INTERVAL after the newest key of an algorithm was made", async (t) => {
  t.same(planKeyLifecycle(fullSet(89 * day), now, policy).create, []);
  const due = planKeyLifecycle(fullSet(90 * day), now, policy);
  t.same(due.create.map((c) => `${c.alg}:${c.state}`).sort(), ["ES256:next", "EdDSA:next", "RS256:next"]);
  const pending = [...fullSet(90 * day), ...["RS256", "ES256", "EdDSA"].map((alg) => key(`${alg}-next`, alg, "next", hour))];
  t.notOk(hasChanges(planKeyLifecycle(pending, now, policy)), "a next key already waiting: no second rotation");
  t.notOk(hasChanges(planKeyLifecycle(fullSet(900 * day), now, { ...policy, rotationInterval: undefined })), "KEY_ROTATION_INTERVAL=off");
});

t.test("a retired key is removed once its retention has passed", async (t) => {
  const keys = [
    ...fullSet(20 * day),
    key("kept", "RS256", "retired", 40 * day, { retiredAt: ago(14 * day - 60) }),
    key("gone", "ES256", "retired", 40 * day, { retiredAt: ago(14 * day) }),
  ];
  const changes = planKeyLifecycle(keys, now, policy);
  t.same(kids(changes.remove), ["gone"]);
});

t.test("two current keys of one algorithm (never expected) are healed: the latest activated signs", async (t) => {
  const keys = [...fullSet(10 * day), key("second", "RS256", "current", 5 * day)];
  t.same(kids(planKeyLifecycle(keys, now, policy).retire), ["RS256-cur"]);
});

t.test("retention covers the longest lifetime of what a key signed, plus a margin", async (t) => {
  t.equal(keyRetention({ idTokenTtl: 900, accessTokenTtl: 900, sessionTtl: 14 * day }), 14 * day + 600, "ID tokens come back as id_token_hint for the session's lifetime");
  t.equal(keyRetention({ idTokenTtl: 900, accessTokenTtl: 30 * day, sessionTtl: day }), 30 * day + 600);
  t.equal(
    keyRetention({ idTokenTtl: 900, accessTokenTtl: 900, sessionTtl: 3600 }),
    maxResourceAccessTokenTtl + 600,
    "a resource server's JWT access tokens live up to maxResourceAccessTokenTtl: a key that signed one stays published that long",
  );
});

t.test("the JWKS max-age is a tenth of KEY_PUBLISH_AHEAD, at most 5 minutes", async (t) => {
  t.equal(jwksMaxAge(day), 300);
  t.equal(jwksMaxAge(600), 60);
  t.equal(jwksMaxAge(5), 0);
  t.equal(jwksMaxAge(0), 0);
});

t.test("the key set version changes with a kid or a state, not with order", async (t) => {
  const a = [{ kid: "a", state: "current" }, { kid: "b", state: "next" }];
  t.equal(keySetVersion(a), keySetVersion([...a].reverse()));
  t.not(keySetVersion(a), keySetVersion([{ kid: "a", state: "current" }, { kid: "b", state: "current" }]));
  t.not(keySetVersion(a), keySetVersion([{ kid: "a", state: "current" }]));
});
