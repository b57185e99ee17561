import t from "tap";
import { loadConfig, parseDuration } from "../../src/config.ts";

const masterKey = Buffer.alloc(32, 7).toString("base64");
const cookieSecret = "c".repeat(32);

t.test("defaults are those documented in .env.example", async (t) => {
  const c = loadConfig({});
  t.equal(c.port, 3000);
  t.equal(c.host, "127.0.0.1");
  t.equal(c.issuer, "http://localhost:3000");
  t.equal(c.databaseUrl, "file:./data/gatehouse.db");
  t.equal(c.databaseProvider, "sqlite");
  t.equal(c.keysDir, "./keys");
  t.equal(c.accessTokenTtl, 15 * 60);
  t.equal(c.refreshTokenTtl, 7 * 86400);
  t.equal(c.idTokenTtl, 15 * 60);
  t.equal(c.sessionTtl, 14 * 86400);
  t.equal(c.refreshReuseGrace, 0);
  t.same(c.argon2, { memoryCost: 19456, timeCost: 2, parallelism: 1 });
  t.equal(c.keyPublishAhead, 86400);
  t.equal(c.keyRotationInterval, 90 * 86400);
  t.equal(c.keysPollInterval, 5);
  t.equal(c.trustProxy, false);
  t.equal(c.mfa, "optional");
  t.equal(loadConfig({ MFA: "required" }).mfa, "required");
  t.ok(Object.isFrozen(c), "the config is frozen");
});

t.test("the issuer defaults to the port and loses a trailing slash", async (t) => {
  t.equal(loadConfig({ PORT: "8080" }).issuer, "http://localhost:8080");
  t.equal(loadConfig({ ISSUER: "https://id.example.com/", TRUST_PROXY: "true" }).issuer, "https://id.example.com");
});

t.test("PostgreSQL is selected by its URL", async (t) => {
  const c = loadConfig({ DATABASE_URL: "postgresql://u:p@db:5432/gatehouse" });
  t.equal(c.databaseProvider, "postgresql");
  t.equal(c.databasePoolSize, 10, "ten connections by default");
  t.equal(loadConfig({ DATABASE_URL: "postgresql://u:p@db:5432/gatehouse", DATABASE_POOL_SIZE: "4" }).databasePoolSize, 4);
});

t.test("TRUST_PROXY takes true, false or the proxies' addresses", async (t) => {
  t.equal(loadConfig({ TRUST_PROXY: "true" }).trustProxy, true);
  t.equal(loadConfig({ TRUST_PROXY: "false" }).trustProxy, false);
  t.equal(loadConfig({ TRUST_PROXY: "loopback, 10.0.0.0/8,::1" }).trustProxy, "loopback,10.0.0.0/8,::1");
});

t.test("durations", async (t) => {
  t.equal(parseDuration("X", "90", "1s", 0), 90);
  t.equal(parseDuration("X", "90s", "1s", 0), 90);
  t.equal(parseDuration("X", "2h", "1s", 0), 7200);
  t.equal(parseDuration("X", undefined, "7d", 0), 604800);
  t.equal(loadConfig({ KEY_ROTATION_INTERVAL: "off" }).keyRotationInterval, undefined);
});

const invalid: [string, Record<string, string>, RegExp][] = [
  ["a non-numeric PORT", { PORT: "abc" }, /^invalid configuration: PORT must be an integer from 1 to 65535 \(got "abc"\)$/],
  ["a PORT out of range", { PORT: "70000" }, /PORT/],
  ["a DATABASE_POOL_SIZE of 0", { DATABASE_POOL_SIZE: "0" }, /^invalid configuration: DATABASE_POOL_SIZE must be an integer from 1 to 1000/],
  ["a malformed DATABASE_URL", { DATABASE_URL: "mysql://x" }, /^invalid configuration: DATABASE_URL must be a file: \(SQLite\) or postgresql:\/\/ URL$/],
  ["a PostgreSQL URL without a database", { DATABASE_URL: "postgresql://user:hunter2@" }, /DATABASE_URL is not a valid/],
  ["an ISSUER that is not a URL", { ISSUER: "id.example.com" }, /ISSUER/],
  ["an ISSUER with a query", { ISSUER: "https://id.example.com/?a=b" }, /ISSUER/],
  ["a token lifetime without a unit it knows", { ACCESS_TOKEN_TTL: "15 minutes" }, /ACCESS_TOKEN_TTL/],
  ["REFRESH_REUSE_GRACE over 60 s", { REFRESH_REUSE_GRACE: "2m" }, /REFRESH_REUSE_GRACE .* from 0s to 60s/],
  ["KEYS_POLL_INTERVAL over 10 s (a key set change must be served within 10 seconds)", { KEYS_POLL_INTERVAL: "30s" }, /KEYS_POLL_INTERVAL .* from 1s to 10s/],
  ["argon2 memory below OWASP's minimum", { ARGON2_MEMORY_KIB: "1024" }, /ARGON2_MEMORY_KIB/],
  ["a master key of the wrong length", { MASTER_KEYS: Buffer.alloc(16).toString("base64") }, /MASTER_KEYS/],
  ["a short cookie secret", { COOKIE_SECRETS: "short" }, /COOKIE_SECRETS/],
  ["an unknown LOG_LEVEL", { LOG_LEVEL: "loud" }, /LOG_LEVEL/],
  ["an unknown REGISTRATION", { REGISTRATION: "public" }, /REGISTRATION/],
  ["an MFA other than optional or required", { MFA: "always" }, /^invalid configuration: MFA must be optional or required \(got "always"\)$/],
  ["a REDIS_URL of another scheme", { REDIS_URL: "http://cache" }, /REDIS_URL/],
  ["a TRUST_PROXY it cannot read", { TRUST_PROXY: "maybe" }, /TRUST_PROXY/],
  ["a TRUST_PROXY hop count (Fastify cannot check the peer with one)", { TRUST_PROXY: "1" }, /TRUST_PROXY must be true, false, or the proxies' addresses/],
  ["an https ISSUER without TRUST_PROXY (no TLS proxy to trust)", { ISSUER: "https://id.example.com" }, /^invalid configuration: TRUST_PROXY must be set when ISSUER is https/],
  [
    "production without COOKIE_SECRETS",
    { NODE_ENV: "production", MASTER_KEYS: masterKey, ISSUER: "https://id.example.com" },
    /^invalid configuration: COOKIE_SECRETS is required when NODE_ENV=production$/,
  ],
  [
    "production without MASTER_KEYS",
    { NODE_ENV: "production", COOKIE_SECRETS: cookieSecret, ISSUER: "https://id.example.com" },
    /MASTER_KEYS is required/,
  ],
  [
    "production with an http issuer that is not localhost",
    { NODE_ENV: "production", COOKIE_SECRETS: cookieSecret, MASTER_KEYS: masterKey, ISSUER: "http://id.example.com" },
    /ISSUER must be an https: URL/,
  ],
];

for (const [what, env, message] of invalid) {
  t.test(`${what} is refused with one line naming the variable`, async (t) => {
    t.throws(() => loadConfig(env), { name: "ConfigError", code: "invalid_configuration" });
    try {
      loadConfig(env);
    } catch (error) {
      t.match((error as Error).message, message);
      t.notMatch((error as Error).message, /\n/, "one line");
      t.notMatch((error as Error).message, /hunter2/, "never echoes a password");
    }
  });
}

t.test("production accepts https, or http on localhost", async (t) => {
  const base = { NODE_ENV: "production", COOKIE_SECRETS: `${cookieSecret},${"d".repeat(40)}`, MASTER_KEYS: masterKey, TRUST_PROXY: "true" };
  t.equal(loadConfig({ ...base, ISSUER: "https://id.example.com" }).production, true);
  t.equal(loadConfig({ ...base, ISSUER: "http://localhost:3000" }).issuer, "http://localhost:3000");
  t.same(loadConfig({ ...base }).cookieSecrets, [cookieSecret, "d".repeat(40)], "newest first, as given");
});
