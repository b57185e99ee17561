/**
 * The real server, started as `npm start` starts it, on 127.0.0.1 with a
 * temporary database and key folder; a client created with the real CLI; and
 * openid-client (panva) as the relying party.
 */
import t from "tap";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as oidc from "openid-client";
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from "jose";
import { createTestDatabase, providers } from "../helpers/databases.ts";
import { runCli, startServer } from "../helpers/processes.ts";

for (const provider of providers(t)) {
  t.test(`on ${provider}`, async (t) => {
    const keysDir = mkdtempSync(join(tmpdir(), "gatehouse-keys-"));
    t.teardown(() => rmSync(keysDir, { recursive: true, force: true }));
    const database = await createTestDatabase(t, provider);
    // LOG_LEVEL=info so that the check below, that no secret reaches the log, reads every request line.
    const env = { DATABASE_URL: database.url, KEYS_DIR: keysDir, LOG_LEVEL: "info" };

    const server = await startServer(t, env);
    t.equal(statSync(join(keysDir, "master.key")).mode & 0o777, 0o600, "the development master key is created, readable by its owner only");

    const created = await runCli(
      ["clients", "create", "--name", "Reporting job", "--grant-types", "client_credentials", "--scope", "admin:read"],
      env,
    );
    t.equal(created.code, 0, created.stderr);
    const { client_id, client_secret } = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
    t.match(client_secret, /^[A-Za-z0-9_-]{43}$/, "the secret is 256 random bits, base64url");

    const config = await oidc.discovery(new URL(server.url), client_id, client_secret, oidc.ClientSecretBasic(client_secret), {
      execute: [oidc.allowInsecureRequests],
    });
    const metadata = config.serverMetadata();
    t.equal(metadata.issuer, server.url, "discovery names this issuer");
    t.same(metadata.code_challenge_methods_supported, ["S256"], "PKCE S256 only");

    const tokens = await oidc.clientCredentialsGrant(config, { scope: "admin:read" });
    t.equal(tokens.token_type.toLowerCase(), "bearer");
    t.equal(tokens.scope, "admin:read");
    t.ok(tokens.expires_in && tokens.expires_in <= 900 && tokens.expires_in > 890, "ACCESS_TOKEN_TTL defaults to 15 minutes");

    const introspection = await oidc.tokenIntrospection(config, tokens.access_token);
    t.equal(introspection.active, true, "introspection says the token is active");
    t.equal(introspection.client_id, client_id);
    t.equal(introspection.scope, "admin:read");
    t.equal(introspection.iss, server.url);

    await t.test("a JWT introspection response verifies against the served JWKS", async (t) => {
      const res = await fetch(metadata.introspection_endpoint!, {
        method: "POST",
        headers: {
          authorization: `Basic ${Buffer.from(`${client_id}:${client_secret}`).toString("base64")}`,
          accept: "application/token-introspection+jwt",
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ token: tokens.access_token }),
      });
      t.equal(res.status, 200);
      t.match(res.headers.get("content-type"), /application\/token-introspection\+jwt/);
      const jwt = await res.text();
      t.equal(decodeProtectedHeader(jwt).alg, "RS256", "signed with the RS256 key by default");
      const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri!));
      const { payload } = await jwtVerify(jwt, jwks, { issuer: server.url, audience: client_id });
      t.match(payload.token_introspection, { active: true, client_id, scope: "admin:read" });

      const tampered = jwt.slice(0, -4) + (jwt.endsWith("AAAA") ? "BBBB" : "AAAA");
      await t.rejects(jwtVerify(tampered, jwks, { issuer: server.url }), "a tampered signature does not verify");
    });

    await t.test("the JWKS publishes an ES256, an EdDSA and an RS256 key and no private part", async (t) => {
      const jwks = (await (await fetch(metadata.jwks_uri!)).json()) as { keys: Record<string, unknown>[] };
      t.same(jwks.keys.map((k) => k.alg).sort(), ["ES256", "EdDSA", "RS256"]);
      for (const key of jwks.keys) t.notOk("d" in key || "p" in key || "q" in key, `${String(key.kid)} has no private member`);
      const exported = await runCli(["keys", "export"], env);
      t.same(JSON.parse(exported.stdout), jwks, "`gatehouse keys export` prints the served JWKS");
    });

    await t.test("a wrong client secret is refused", async (t) => {
      const wrong = await oidc.discovery(new URL(server.url), client_id, "not-the-secret", undefined, {
        execute: [oidc.allowInsecureRequests],
      });
      await t.rejects(oidc.clientCredentialsGrant(wrong, { scope: "admin:read" }), { error: "invalid_client" } as object as Error);
    });

    await t.test("a scope the client was not allowed is refused", async (t) => {
      await t.rejects(oidc.clientCredentialsGrant(config, { scope: "admin:write" }), { error: "invalid_scope" } as object as Error);
    });

    await t.test("a revoked token introspects as inactive", async (t) => {
      const other = await oidc.clientCredentialsGrant(config, { scope: "admin:read" });
      await oidc.tokenRevocation(config, other.access_token);
      const after = await oidc.tokenIntrospection(config, other.access_token);
      t.equal(after.active, false);
    });

    await t.test("health and readiness", async (t) => {
      t.same(await (await fetch(`${server.url}/healthz`)).json(), { status: "ok" });
      const ready = await fetch(`${server.url}/readyz`);
      t.equal(ready.status, 200);
      t.match(ready.headers.get("x-request-id"), /^[0-9a-f-]{36}$/, "every response carries a request id");
    });

    await t.test("SIGTERM shuts down gracefully with exit code 0", async (t) => {
      const code = await server.stop("SIGTERM");
      t.equal(code, 0);
      t.notMatch(server.output(), client_secret, "the client secret never reaches the log");
      t.notMatch(server.output(), tokens.access_token, "tokens never reach the log");
    });
  });
}

t.test("a test server whose port was taken before it listened is started again on another", async (t) => {
  const keysDir = mkdtempSync(join(tmpdir(), "gatehouse-keys-"));
  t.teardown(() => rmSync(keysDir, { recursive: true, force: true }));
  const database = await createTestDatabase(t, "sqlite");
  // Something else listens on the port first, and never answers whoever connects.
  const held = new Set<Socket>();
  const taken = createServer((socket) => held.add(socket));
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  t.teardown(async () => {
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => taken.close(() => resolve()));
  });
  const { port } = taken.address() as AddressInfo;
  const server = await startServer(t, { DATABASE_URL: database.url, KEYS_DIR: keysDir }, { port });
  t.not(new URL(server.url).port, String(port), "another port");
  t.equal((await fetch(`${server.url}/readyz`)).status, 200, "and it is ready there");
});
