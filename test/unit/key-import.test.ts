/**
 * `gatehouse keys import`'s checks: private RSA, EC P-256 and Ed25519 keys
 * are accepted with their kid (alg inferred when missing); anything else is
 * refused with one line naming the key and the reason.
 */
import t from "tap";
import { generateKeyPairSync } from "node:crypto";
import { calculateJwkThumbprint, type JWK } from "jose";
import { parsePrivateJwks } from "../../src/oidc/key-import.ts";

const jwkOf = (pair: { privateKey: { export(o: { format: "jwk" }): object } }) => pair.privateKey.export({ format: "jwk" }) as JWK;
const rsa = (bits = 2048) => jwkOf(generateKeyPairSync("rsa", { modulusLength: bits }));
const ec = (curve = "P-256") => jwkOf(generateKeyPairSync("ec", { namedCurve: curve }));
const ed = () => jwkOf(generateKeyPairSync("ed25519"));
const jwks = (...keys: object[]) => JSON.stringify({ keys });

t.test("RSA, EC P-256 and Ed25519 private keys are accepted, kid kept, alg inferred", async (t) => {
  const keys = await parsePrivateJwks(jwks({ ...rsa(), kid: "legacy-rsa" }, { ...ec(), kid: "legacy-ec", alg: "ES256", use: "sig" }, { ...ed(), kid: "legacy-ed" }));
  t.same(
    keys.map((k) => [k.kid, k.alg]),
    [
      ["legacy-rsa", "RS256"],
      ["legacy-ec", "ES256"],
      ["legacy-ed", "EdDSA"],
    ],
  );
  for (const key of keys) {
    t.notOk("d" in key.publicJwk, `${key.kid}: the public JWK has no private member`);
    t.equal(key.privateJwk.kid, key.kid);
    t.equal(key.publicJwk.use, "sig");
  }
});

t.test("a key without a kid gets its RFC 7638 thumbprint", async (t) => {
  const key = ec();
  const [imported] = await parsePrivateJwks(jwks(key));
  t.equal(imported!.kid, await calculateJwkThumbprint({ kty: key.kty, crv: key.crv, x: key.x, y: key.y } as JWK));
});

const { d: _d, ...publicOnly } = ec();
const mismatched = { ...ec(), d: ec().d };
const { p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...rsaWithoutCrt } = rsa();
const refusals: [string, string, RegExp][] = [
  ["not JSON", "{keys", /not valid JSON/],
  ["a single JWK instead of a set", JSON.stringify(ec()), /expected a private JSON Web Key Set/],
  ["an empty set", jwks(), /empty/],
  ["a public key only", jwks({ ...publicOnly, kid: "pub" }), /^key 0 \(kid "pub"\) is a public key only: import needs the private key/],
  ["a symmetric key", jwks({ kty: "oct", k: "c2VjcmV0", kid: "sym" }), /^key 0 \(kid "sym"\) is a symmetric \(oct\) key/],
  ["an unsupported curve", jwks(ec("P-384")), /^key 0 uses curve "P-384", which is not supported/],
  ["an X25519 key", jwks(jwkOf(generateKeyPairSync("x25519"))), /curve "X25519", which is not supported/],
  ["a private part that does not match", jwks({ ...mismatched, kid: "odd" }), /^key 0 \(kid "odd"\) has a private part that does not match its public part/],
  ["an alg that does not fit the key", jwks({ ...rsa(), alg: "ES256" }), /names alg "ES256", but a RSA key here signs RS256 only/],
  ["an RSA-PSS alg", jwks({ ...rsa(), alg: "PS256" }), /names alg "PS256"/],
  ["an encryption key", jwks({ ...ec(), use: "enc" }), /only signing keys/],
  ["a short RSA key", jwks(rsa(1024)), /shorter than 2048 bits/],
  ["an RSA key without CRT parameters", jwks(rsaWithoutCrt), /lacks its private member "p"/],
  ["a repeated kid", jwks({ ...ec(), kid: "x" }, { ...ed(), kid: "x" }), /kid "x" appears more than once/],
  ["the second key bad", jwks(ec(), { ...publicOnly }), /^key 1 is a public key only/],
];

for (const [what, input, message] of refusals) {
  t.test(`refused: ${what}, with one line`, async (t) => {
    const error = await parsePrivateJwks(input).then(
      () => undefined,
      (e: Error) => e,
    );
    t.ok(error, "refused");
    t.match(error?.message, message);
    t.notMatch(error?.message ?? "", /\n/, "one line");
    t.equal((error as { code?: string } | undefined)?.code, "invalid_key");
  });
}
