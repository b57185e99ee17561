/** The `gatehouse` command, run as a real process against a temporary database. */
import t from "tap";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase } from "../helpers/databases.ts";
import { spawnSync } from "node:child_process";
import { root, runCli } from "../helpers/processes.ts";
import { createAdapterFactory } from "../../src/oidc/adapter.ts";
import { clientSecretContext, createClientStore } from "../../src/oidc/client-store.ts";
import { loadMasterKeyRing } from "../../src/crypto/master-keys.ts";
import { storedIdsFor } from "../../src/crypto/stored-ids.ts";
import { ensureSigningKeys } from "../../src/oidc/keys.ts";
import { auditKeyOf } from "../../src/services/audit.ts";
import { listMigrations } from "../../src/db/migrate.ts";

const keysDir = mkdtempSync(join(tmpdir(), "gatehouse-keys-"));
t.teardown(() => rmSync(keysDir, { recursive: true, force: true }));
const database = await createTestDatabase(t, "sqlite");
const env = { DATABASE_URL: database.url, KEYS_DIR: keysDir };
const ring = loadMasterKeyRing({ keysDir, masterKeys: undefined, production: false });
const db = await database.open({ auditKey: auditKeyOf(ring) });

t.test("users create reads the password from stdin and stores an argon2id hash", async (t) => {
  const result = await runCli(["users", "create", "--email", "Ada@Example.COM", "--name", "Ada", "--role", "admin", "--password-stdin"], env, "correct horse battery staple\n");
  t.equal(result.code, 0, result.stderr);
  const printed = JSON.parse(result.stdout);
  t.same(Object.keys(printed).sort(), ["email", "id"]);
  t.equal(printed.email, "ada@example.com", "emails are stored lower-cased");
  const row = await db.prisma.user.findUniqueOrThrow({ where: { id: printed.id } });
  t.equal(row.name, "Ada");
  t.equal(row.role, "admin");
  t.match(row.passwordHash, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/, "argon2id at OWASP's parameters");
  t.notMatch(row.passwordHash!, /correct horse/);
});

t.test("a duplicate email, in any case, is refused and nothing is written", async (t) => {
  const result = await runCli(["users", "create", "--email", "ADA@example.com"], env);
  t.equal(result.code, 1);
  t.equal(result.stderr, "gatehouse: a user with email ada@example.com already exists\n");
  t.equal(result.stdout, "");
  t.equal(await db.prisma.user.count({ where: { email: "ada@example.com" } }), 1);
});

t.test("a password on the command line is refused", async (t) => {
  for (const args of [["--password", "hunter2hunter2"], ["--password=hunter2hunter2"]]) {
    const result = await runCli(["users", "create", "--email", "bob@example.com", ...args], env);
    t.equal(result.code, 2, `${args.join(" ")} exits 2`);
    t.match(result.stderr, /^gatehouse: secrets are read from stdin, never from arguments: use --password-stdin\n/);
  }
  t.equal(await db.prisma.user.count({ where: { email: "bob@example.com" } }), 0, "no user was created");
});

t.test("a password shorter than 8 characters is refused and nothing is written", async (t) => {
  const result = await runCli(["users", "create", "--email", "carol@example.com", "--password-stdin"], env, "short\n");
  t.equal(result.code, 1);
  t.equal(result.stderr, "gatehouse: password must be at least 8 characters\n");
  t.equal(await db.prisma.user.count({ where: { email: "carol@example.com" } }), 0);
});

t.test("an invalid email is refused", async (t) => {
  const result = await runCli(["users", "create", "--email", "not-an-email"], env);
  t.equal(result.code, 1);
  t.match(result.stderr, /^gatehouse: invalid email address/);
});

t.test("clients create: a confidential client gets a secret stored sealed, never in clear", async (t) => {
  const result = await runCli(
    ["clients", "create", "--name", "Web app", "--redirect-uri", "https://app.example.com/cb", "--redirect-uri", "http://localhost:8080/cb", "--post-logout-redirect-uri", "https://app.example.com/", "--first-party"],
    env,
  );
  t.equal(result.code, 0, result.stderr);
  const { client_id, client_secret } = JSON.parse(result.stdout);
  t.type(client_secret, "string");
  const row = await db.prisma.client.findUniqueOrThrow({ where: { id: client_id } });
  t.notMatch(row.secretEncrypted!, client_secret, "the stored secret is not the secret");
  t.equal(await ring.decrypt(row.secretEncrypted!, clientSecretContext(row.id)), client_secret, "it opens with the master key");
  t.equal(row.firstParty, true);
  t.match(row.metadata, {
    redirect_uris: ["https://app.example.com/cb", "http://localhost:8080/cb"],
    post_logout_redirect_uris: ["https://app.example.com/"],
    grant_types: ["authorization_code", "refresh_token"],
    scope: "openid profile email offline_access",
    token_endpoint_auth_method: "client_secret_basic",
  });
  const metadata = await createClientStore(db, ring).findMetadata(client_id);
  t.equal(metadata?.client_secret, client_secret, "oidc-provider sees the secret");
});

t.test("clients create --public gives no secret and authenticates with none", async (t) => {
  const result = await runCli(["clients", "create", "--name", "SPA", "--public", "--redirect-uri", "https://spa.example.com/cb"], env);
  t.equal(result.code, 0, result.stderr);
  const printed = JSON.parse(result.stdout);
  t.same(Object.keys(printed), ["client_id"]);
  const row = await db.prisma.client.findUniqueOrThrow({ where: { id: printed.client_id } });
  t.equal(row.secretEncrypted, null);
  t.match(row.metadata, { token_endpoint_auth_method: "none" });
});

t.test("clients create refuses bad input and writes nothing", async (t) => {
  const before = await db.prisma.client.count();
  const cases: [string[], RegExp][] = [
    [["--redirect-uri", "http://evil.example.com/cb"], /redirect_uri "http:\/\/evil.example.com\/cb" must use https/],
    [["--redirect-uri", "https://app.example.com/cb#frag"], /must not have a fragment/],
    [["--redirect-uri", "not a url"], /is not an absolute URL/],
    [[], /the authorization_code grant needs at least one redirect URI/],
    [["--grant-types", "password"], /grant types must be among/],
    [["--grant-types", "client_credentials", "--scope", "superuser"], /unknown scope: superuser/],
    [["--public", "--grant-types", "client_credentials"], /a public client cannot use client_credentials/],
  ];
  for (const [args, message] of cases) {
    const result = await runCli(["clients", "create", "--name", "Bad", ...args], env);
    t.equal(result.code, 1, args.join(" "));
    t.match(result.stderr, message);
    t.equal(result.stderr.split("\n").length, 2, "one line");
  }
  t.equal(await db.prisma.client.count(), before, "no client was written");
});

t.test("clients list prints every client without secrets", async (t) => {
  const result = await runCli(["clients", "list"], env);
  t.equal(result.code, 0, result.stderr);
  const list = JSON.parse(result.stdout) as Record<string, unknown>[];
  t.same(list.map((c) => c.client_name).sort(), ["SPA", "Web app"]);
  for (const client of list) t.notOk("client_secret" in client);
});

t.test("users set-password changes the hash and revokes the user's sessions and grants", async (t) => {
  const user = await db.prisma.user.findUniqueOrThrow({ where: { email: "ada@example.com" } });
  const adapter = createAdapterFactory(db, createClientStore(db, ring), storedIdsFor(ring));
  await adapter("Session").upsert("s1", { accountId: user.id, uid: "u1" } as never, 3600);
  await adapter("Grant").upsert("g1", { accountId: user.id, clientId: "c1" } as never, 3600);
  await adapter("AccessToken").upsert("at1", { accountId: user.id, clientId: "c1", grantId: "g1" } as never, 3600);
  await adapter("Grant").upsert("g2", { accountId: "someone-else", clientId: "c1" } as never, 3600);

  const result = await runCli(["users", "set-password", "--email", "ada@example.com", "--password-stdin"], env, "a brand new passphrase\n");
  t.equal(result.code, 0, result.stderr);
  const after = await db.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
  t.not(after.passwordHash, user.passwordHash);
  t.equal(await adapter("Session").find("s1"), undefined, "the session is gone");
  t.equal(await adapter("Grant").find("g1"), undefined, "the grant is gone");
  t.equal(await adapter("AccessToken").find("at1"), undefined, "its token is gone");
  t.ok(await adapter("Grant").find("g2"), "another user's grant stays");

  const unknown = await runCli(["users", "set-password", "--email", "nobody@example.com", "--password-stdin"], env, "a brand new passphrase\n");
  t.equal(unknown.code, 1);
  t.equal(unknown.stderr, "gatehouse: no user with email nobody@example.com\n");
});

t.test("keys list and keys export", async (t) => {
  await ensureSigningKeys(db, ring);
  const list = await runCli(["keys", "list"], env);
  t.equal(list.code, 0, list.stderr);
  const keys = JSON.parse(list.stdout) as Record<string, unknown>[];
  t.same(keys.map((k) => `${k.alg}:${k.state}`).sort(), ["ES256:current", "EdDSA:current", "RS256:current"]);
  for (const key of keys) t.match(key, { kid: String, created_at: String, activated_at: String, retired_at: null });
  const exported = JSON.parse((await runCli(["keys", "export"], env)).stdout) as { keys: Record<string, unknown>[] };
  t.same(exported.keys.map((k) => k.kid).sort(), keys.map((k) => k.kid).sort());
  for (const key of exported.keys) t.notOk("d" in key, "public parts only");
});

t.test("resources create prints the resource server as JSON; list shows it after the built-in admin API", async (t) => {
  const worker = JSON.parse((await runCli(["clients", "create", "--name", "Orders gateway", "--grant-types", "client_credentials"], env)).stdout) as { client_id: string };
  const result = await runCli(
    [
      "resources", "create", "--identifier", "https://orders.example/api", "--scope", "read:orders write:orders", "--name", "Orders",
      "--token-format", "jwt", "--signing-alg", "ES256", "--access-token-ttl", "10m", "--introspection-client", worker.client_id,
    ],
    env,
  );
  t.equal(result.code, 0, result.stderr);
  const printed = JSON.parse(result.stdout);
  t.match(printed, {
    id: String,
    identifier: "https://orders.example/api",
    name: "Orders",
    scopes: [{ name: "read:orders", description: "" }, { name: "write:orders", description: "" }],
    token_format: "jwt",
    signing_alg: "ES256",
    access_token_ttl: 600,
    introspection_clients: [worker.client_id],
    built_in: false,
  });
  const defaults = JSON.parse((await runCli(["resources", "create", "--identifier", "https://billing.example/", "--scope", "read:billing"], env)).stdout);
  t.match(defaults, { name: "https://billing.example/", token_format: "opaque", signing_alg: "RS256", access_token_ttl: 900, introspection_clients: [] }, "defaults: opaque, RS256, ACCESS_TOKEN_TTL");
  const list = await runCli(["resources", "list"], env);
  t.equal(list.code, 0, list.stderr);
  const items = JSON.parse(list.stdout) as { identifier: string; built_in: boolean }[];
  t.match(items[0], { id: "admin", built_in: true, identifier: /\/admin\/v1$/ });
  t.ok(items.some((r) => r.identifier === "https://orders.example/api"));

  const client = await runCli(["clients", "create", "--name", "Orders worker", "--grant-types", "client_credentials", "--scope", "read:orders"], env);
  t.equal(client.code, 0, `clients create accepts a registered resource server's scope ${client.stderr}`);
  const unknown = await runCli(["clients", "create", "--name", "Other", "--grant-types", "client_credentials", "--scope", "read:nothing"], env);
  t.equal(unknown.code, 1);
  t.equal(unknown.stderr, "gatehouse: unknown scope: read:nothing\n");
});

t.test("resources create: errors are one line with a non-zero exit, and nothing is written", async (t) => {
  const before = await db.prisma.resourceServer.count();
  const cases: [string[], number, RegExp][] = [
    [["resources", "create", "--scope", "read:x"], 2, /^gatehouse: resources create needs --identifier and --scope\n/],
    [["resources", "create", "--identifier", "not a uri", "--scope", "read:x"], 1, /^gatehouse: identifier "not a uri" is not an absolute URI\n$/],
    [["resources", "create", "--identifier", "https://orders.example/api", "--scope", "read:y"], 1, /^gatehouse: a resource server with identifier https:\/\/orders.example\/api exists\n$/],
    [["resources", "create", "--identifier", "https://other.example/", "--scope", "read:orders"], 1, /^gatehouse: scope read:orders already belongs to the resource server https:\/\/orders.example\/api\n$/],
    [["resources", "create", "--identifier", "https://other.example/", "--scope", "read:z", "--token-format", "paseto"], 1, /^gatehouse: token_format must be one of opaque, jwt\n$/],
    [["resources", "create", "--identifier", "https://other.example/", "--scope", "read:z", "--access-token-ttl", "soon"], 2, /^gatehouse: --access-token-ttl takes a duration/],
    [["resources", "create", "--identifier", "https://other.example/", "--scope", "read:z", "--access-token-ttl", "2d"], 1, /^gatehouse: access_token_ttl must be from 1 to 86400 seconds\n$/],
  ];
  for (const [args, code, stderr] of cases) {
    const result = await runCli(args, env);
    t.equal(result.code, code, args.join(" "));
    t.match(result.stderr, stderr, args.join(" "));
    t.equal(result.stdout, "", "nothing on stdout");
  }
  t.equal(await db.prisma.resourceServer.count(), before, "no resource server was written");
});

t.test("an unknown command prints usage and exits 2", async (t) => {
  const result = await runCli(["frobnicate"], env);
  t.equal(result.code, 2);
  t.match(result.stderr, /^gatehouse: unknown command: frobnicate\nusage: gatehouse/);
});

t.test("an invalid environment stops the CLI with one line", async (t) => {
  const result = await runCli(["clients", "list"], { ...env, DATABASE_URL: "mysql://db/x" });
  t.equal(result.code, 1);
  t.equal(result.stderr, "gatehouse: invalid configuration: DATABASE_URL must be a file: (SQLite) or postgresql:// URL\n");
});

t.test("gatehouse migrate applies pending migrations once, in a form Prisma's own CLI agrees with", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-migrate-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const freshEnv = { ...env, DATABASE_URL: `file:${join(dir, "fresh.db")}` };
  const first = await runCli(["migrate"], freshEnv);
  t.equal(first.code, 0, first.stderr);
  t.same(JSON.parse(first.stdout), { applied: listMigrations("sqlite").map((m) => m.name) }, "every checked-in migration, in order");
  const second = await runCli(["migrate"], freshEnv);
  t.same(JSON.parse(second.stdout), { applied: [] }, "nothing is applied twice");

  const status = spawnSync(process.execPath, [join(root, "node_modules/prisma/build/index.js"), "migrate", "status", "--config", "prisma/sqlite.config.ts"], {
    cwd: root,
    env: { PATH: process.env.PATH, DATABASE_URL: freshEnv.DATABASE_URL },
    encoding: "utf8",
  });
  t.equal(status.status, 0, status.stderr);
  t.match(status.stdout, /Database schema is up to date!/);
});
