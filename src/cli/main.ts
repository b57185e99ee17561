/**
 * `gatehouse`: the operators' command line (README, "The gatehouse command"). Parses
 * arguments, calls the same services as the admin API, prints JSON on stdout;
 * errors go to stderr as one line with a non-zero exit. Secrets are read from
 * stdin, never from arguments (they would end up in shell history and `ps`).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { bootstrap } from "../bootstrap.ts";
import { loadConfig, type Config } from "../config.ts";
import type { Database } from "../db/database.ts";
import { migrateDatabase } from "../db/migrate.ts";
import { exportPublicJwks, listSigningKeys } from "../oidc/keys.ts";
import { parsePrivateJwks } from "../oidc/key-import.ts";
import { importSigningKeys, keyPolicyOf, removeSigningKey, rotateSigningKeys } from "../services/signing-keys.ts";
import { resealSealedValues } from "../services/reseal.ts";
import { createClient, listClients, type PublicJwk } from "../services/clients.ts";
import { createUser, setUserPasswordByEmail } from "../services/users.ts";
import { inviteUser } from "../services/account-lifecycle.ts";
import { createEmailSendLimiter } from "../auth/email-send-limiter.ts";
import { createMemoryCounterStore } from "../auth/counter-store.ts";
import { resetMfaByEmail } from "../services/mfa.ts";
import { createResourceServer, listResourceServers } from "../services/resource-servers.ts";
import { cliOperator } from "../services/actor.ts";
import { verifyAuditChain } from "../services/audit.ts";
import { ensureSigningKeys, loadSigningKeys } from "../oidc/keys.ts";
import { createClientStore } from "../oidc/client-store.ts";
import { providerClientValidator } from "../oidc/client-validation.ts";
import { cookieKeysFor } from "../crypto/master-keys.ts";
import { storedIdsFor } from "../crypto/stored-ids.ts";

class UsageError extends Error {}

const usage = `usage: gatehouse <command>
  migrate
  keys list | export | rotate [--now] | import (private JWKS on stdin) | remove KID | reseal
  users create --email E [--name N] [--role admin|editor|member] [--password-stdin]
  users set-password --email E --password-stdin
  users invite --email E [--name N] [--role admin|editor|member]
  users reset-mfa --email E
  clients create --name N [--redirect-uri U]... [--post-logout-redirect-uri U]... [--public]
                 [--grant-types authorization_code,refresh_token,client_credentials,urn:ietf:params:oauth:grant-type:device_code]
                 [--scope "openid profile email offline_access"] [--first-party]
                 [--token-endpoint-auth-method client_secret_basic|client_secret_post|private_key_jwt|none]
                 [--jwks-uri U | --jwks-stdin] [--id-token-signed-response-alg RS256|ES256|EdDSA]
  clients list
  resources create --identifier URI --scope "read:x write:x" [--name N] [--token-format opaque|jwt]
                   [--signing-alg RS256|ES256|EdDSA] [--access-token-ttl 15m] [--introspection-client CLIENT_ID]...
  resources list
  audit verify [--head SEQ:HASH]`;

/** Refuses a secret given as an argument (it would stay in the shell's history and the process list). */
function refuseSecretArguments(args: string[]): void {
  for (const arg of args) {
    if (/^--(password|secret|client-secret)(=|$)/.test(arg)) {
      throw new UsageError("secrets are read from stdin, never from arguments: use --password-stdin");
    }
  }
}

function parse(args: string[], options: NonNullable<ParseArgsConfig["options"]>) {
  refuseSecretArguments(args);
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // One trailing newline is the end of the line, not part of the secret.
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

/**
 * oidc-provider, loaded only by the commands that need it. On Node 20 it
 * prints an "Unsupported runtime" notice when loaded (README, Node.js
 * versions); the CLI's stderr is for errors (README, "The gatehouse command"), so that one
 * notice is held back.
 */
async function loadProviderModule() {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!String(args[0]).includes("Unsupported runtime")) warn(...args);
  };
  try {
    return await import("../oidc/provider.ts");
  } finally {
    console.warn = warn;
  }
}

/** The client's public JWKS from stdin (`--jwks-stdin`): JSON {"keys": [...]}. */
function parseJwks(text: string): { keys: PublicJwk[] } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError("--jwks-stdin expects a JSON Web Key Set on stdin: {\"keys\": [...]}");
  }
  if (!value || typeof value !== "object" || !Array.isArray((value as { keys?: unknown }).keys)) {
    throw new UsageError("--jwks-stdin expects a JSON Web Key Set on stdin: {\"keys\": [...]}");
  }
  return value as { keys: PublicJwk[] };
}

/** `--head SEQ:HASH`, as printed by an earlier `audit verify` (head.seq and head.hash). */
function parseHead(text: string): { seq: number; hash: string } {
  const match = /^(\d{1,15}):(\S{1,200})$/.exec(text);
  if (!match) throw new UsageError("--head takes SEQ:HASH, the head printed by an earlier audit verify");
  return { seq: Number(match[1]), hash: match[2]! };
}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/** `keys list`'s entries for `kids`, in that order. */
async function listKeys(db: Database, config: Config, kids: string[]) {
  const all = await listSigningKeys(db, keyPolicyOf(config));
  return kids.map((kid) => all.find((k) => k.kid === kid)!);
}

async function withRuntime<T>(config: Config, work: (rt: Awaited<ReturnType<typeof bootstrap>>) => Promise<T>): Promise<T> {
  const runtime = await bootstrap(config, { ensureKeys: false });
  try {
    return await work(runtime);
  } finally {
    await runtime.db.close();
  }
}

async function run(argv: string[]): Promise<void> {
  const [command, sub, ...rest] = argv;
  const config = loadConfig();

  if (command === "migrate" && sub === undefined) {
    print({ applied: await migrateDatabase(config.databaseUrl, config.databaseProvider) });
    return;
  }

  if (command === "keys" && (sub === "list" || sub === "export")) {
    parse(rest, {});
    const policy = keyPolicyOf(config);
    await withRuntime(config, async ({ db }) => print(sub === "list" ? await listSigningKeys(db, policy) : await exportPublicJwks(db)));
    return;
  }

  if (command === "keys" && sub === "rotate") {
    const v = parse(rest, { now: { type: "boolean" } });
    await withRuntime(config, async ({ db, ring }) => {
      const kids = await rotateSigningKeys(db, ring, { immediately: v.now === true }, cliOperator);
      print(await listKeys(db, config, kids));
    });
    return;
  }

  if (command === "keys" && sub === "import") {
    parse(rest, {});
    // Checked in full before the database is touched: nothing is written unless every key passes.
    const keys = await parsePrivateJwks(await readStdin());
    await withRuntime(config, async ({ db, ring }) => {
      const kids = await importSigningKeys(db, ring, keys, cliOperator);
      print(await listKeys(db, config, kids));
    });
    return;
  }

  if (command === "keys" && sub === "remove") {
    const [kid, ...more] = rest;
    // A kid is an RFC 7638 thumbprint in base64url: it may start with dashes.
    // Not a secret, though: such an argument is refused, never echoed back.
    refuseSecretArguments(rest);
    if (!kid || more.length) throw new UsageError("keys remove takes one KID");
    await withRuntime(config, async ({ db }) => {
      const removed = await removeSigningKey(db, kid, cliOperator);
      print({ removed: { kid: removed.kid, alg: removed.alg, state: removed.state } });
    });
    return;
  }

  if (command === "keys" && sub === "reseal") {
    parse(rest, {});
    await withRuntime(config, async ({ db, ring }) => print(await resealSealedValues(db, ring, cliOperator)));
    return;
  }

  if (command === "users" && sub === "create") {
    const v = parse(rest, {
      email: { type: "string" },
      name: { type: "string" },
      role: { type: "string" },
      "password-stdin": { type: "boolean" },
    });
    if (typeof v.email !== "string") throw new UsageError("users create needs --email");
    const password = v["password-stdin"] ? await readStdin() : undefined;
    await withRuntime(config, async ({ db }) => {
      const user = await createUser(db, config.argon2, {
        email: v.email as string,
        name: v.name as string | undefined,
        role: v.role as string | undefined,
        password,
      }, cliOperator);
      print({ id: user.id, email: user.email });
    });
    return;
  }

  if (command === "users" && sub === "invite") {
    const v = parse(rest, { email: { type: "string" }, name: { type: "string" }, role: { type: "string" } });
    if (typeof v.email !== "string") throw new UsageError("users invite needs --email");
    await withRuntime(config, async ({ db, ring }) => {
      const deps = {
        db,
        config,
        storedIds: storedIdsFor(ring),
        argon2: config.argon2,
        // Invitations are not limited per address (operators send them); the limiter is unused here.
        sendLimiter: createEmailSendLimiter(createMemoryCounterStore(), ring.derive("email-send-limits")),
      };
      const user = await inviteUser(deps, { email: v.email as string, name: v.name as string | undefined, role: v.role as string | undefined }, cliOperator);
      print({ id: user.id, email: user.email });
    });
    return;
  }

  if (command === "users" && sub === "set-password") {
    const v = parse(rest, { email: { type: "string" }, "password-stdin": { type: "boolean" } });
    if (typeof v.email !== "string" || !v["password-stdin"]) throw new UsageError("users set-password needs --email and --password-stdin");
    const password = await readStdin();
    await withRuntime(config, async ({ db }) => {
      const user = await setUserPasswordByEmail(db, config.argon2, v.email as string, password, cliOperator, config);
      print({ id: user.id, email: user.email });
    });
    return;
  }

  if (command === "users" && sub === "reset-mfa") {
    const v = parse(rest, { email: { type: "string" } });
    if (typeof v.email !== "string") throw new UsageError("users reset-mfa needs --email");
    await withRuntime(config, async ({ db }) => {
      print(await resetMfaByEmail(db, v.email as string, cliOperator, config));
    });
    return;
  }

  if (command === "clients" && sub === "create") {
    const v = parse(rest, {
      name: { type: "string" },
      "redirect-uri": { type: "string", multiple: true },
      "post-logout-redirect-uri": { type: "string", multiple: true },
      public: { type: "boolean" },
      "grant-types": { type: "string" },
      scope: { type: "string" },
      "first-party": { type: "boolean" },
      "token-endpoint-auth-method": { type: "string" },
      "jwks-uri": { type: "string" },
      "jwks-stdin": { type: "boolean" },
      "id-token-signed-response-alg": { type: "string" },
    });
    if (typeof v.name !== "string") throw new UsageError("clients create needs --name");
    if (v["jwks-uri"] !== undefined && v["jwks-stdin"]) throw new UsageError("give --jwks-uri or --jwks-stdin, not both");
    const jwks = v["jwks-stdin"] ? parseJwks(await readStdin()) : undefined;
    await withRuntime(config, async ({ db, ring }) => {
      // The provider's own metadata validation, as the admin API does.
      await ensureSigningKeys(db, ring);
      const { createProvider } = await loadProviderModule();
      const provider = createProvider({
        config,
        db,
        clients: createClientStore(db, ring),
        storedIds: storedIdsFor(ring),
        keys: await loadSigningKeys(db, ring),
        cookieKeys: cookieKeysFor(config, ring),
      });
      print(
        await createClient(db, ring, {
          name: v.name as string,
          redirectUris: v["redirect-uri"] as string[] | undefined,
          postLogoutRedirectUris: v["post-logout-redirect-uri"] as string[] | undefined,
          public: v.public as boolean | undefined,
          grantTypes: typeof v["grant-types"] === "string" ? v["grant-types"].split(",").map((g) => g.trim()) : undefined,
          scope: v.scope as string | undefined,
          firstParty: v["first-party"] as boolean | undefined,
          tokenEndpointAuthMethod: v["token-endpoint-auth-method"] as string | undefined,
          jwksUri: v["jwks-uri"] as string | undefined,
          jwks,
          idTokenSignedResponseAlg: v["id-token-signed-response-alg"] as string | undefined,
        }, cliOperator, providerClientValidator(() => provider)),
      );
    });
    return;
  }

  if (command === "clients" && sub === "list") {
    parse(rest, {});
    await withRuntime(config, async ({ db }) => print(await listClients(db)));
    return;
  }

  if (command === "resources" && sub === "create") {
    const v = parse(rest, {
      identifier: { type: "string" },
      scope: { type: "string" },
      name: { type: "string" },
      "token-format": { type: "string" },
      "signing-alg": { type: "string" },
      "access-token-ttl": { type: "string" },
      "introspection-client": { type: "string", multiple: true },
    });
    if (typeof v.identifier !== "string" || typeof v.scope !== "string") throw new UsageError("resources create needs --identifier and --scope");
    const ttl = v["access-token-ttl"];
    let accessTokenTtl: number | undefined;
    if (typeof ttl === "string") {
      const match = /^(\d{1,9})([smhd]?)$/.exec(ttl);
      if (!match) throw new UsageError("--access-token-ttl takes a duration such as 900, 15m, 1h or 1d");
      accessTokenTtl = Number(match[1]) * ({ s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[match[2] || "s"]!;
    }
    await withRuntime(config, async ({ db }) =>
      print(
        await createResourceServer(
          db,
          { issuer: config.issuer, accessTokenTtl: config.accessTokenTtl },
          {
            identifier: v.identifier as string,
            scopes: (v.scope as string).split(/\s+/).filter(Boolean),
            name: v.name as string | undefined,
            tokenFormat: v["token-format"] as string | undefined,
            signingAlg: v["signing-alg"] as string | undefined,
            accessTokenTtl,
            introspectionClients: v["introspection-client"] as string[] | undefined,
          },
          cliOperator,
        ),
      ),
    );
    return;
  }

  if (command === "resources" && sub === "list") {
    parse(rest, {});
    await withRuntime(config, async ({ db }) => print(await listResourceServers(db, { issuer: config.issuer, accessTokenTtl: config.accessTokenTtl })));
    return;
  }

  if (command === "audit" && sub === "verify") {
    const v = parse(rest, { head: { type: "string" } });
    const kept = typeof v.head === "string" ? parseHead(v.head) : undefined;
    await withRuntime(config, async ({ db, ring }) => {
      const result = await verifyAuditChain(db, ring, kept);
      if (result.ok) {
        print({ ok: true, events: result.events, head: result.head });
        return;
      }
      print({ ok: false, events_checked: result.events, head: result.head, first_bad_event: result.firstBad });
      process.stderr.write(`gatehouse: audit chain broken at event ${result.firstBad.id} (seq ${result.firstBad.seq}): ${result.firstBad.reason}\n`);
      process.exitCode = 1;
    });
    return;
  }

  throw new UsageError(command ? `unknown command: ${[command, sub].filter(Boolean).join(" ")}` : "no command given");
}

try {
  await run(process.argv.slice(2));
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`gatehouse: ${message.split("\n")[0]}\n`);
  if (error instanceof UsageError) process.stderr.write(usage + "\n");
  process.exitCode = error instanceof UsageError ? 2 : 1;
}
