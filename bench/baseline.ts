/**
 * The benchmark's baseline: a bare oidc-provider (the version Gatehouse uses)
 * with its in-memory adapter, configured like Gatehouse for the scenarios
 * measured (one confidential client with client_secret_basic, RS256 ID tokens,
 * opaque access and refresh tokens, refresh rotation, PKCE required,
 * introspection and userinfo). Its interaction route signs the benchmark
 * user in and grants consent without a page, so that the authorization code
 * flow measures the protocol work alone.
 *
 * The adapter is chosen by BENCH_STORE:
 * - memory (the default): oidc-provider's own MemoryAdapter, given a larger
 *   store: its default LRU keeps 1,000 entries, and a benchmark issues more
 *   tokens than that, which would evict the virtual users' grants mid-run.
 * - sqlite: bench/baseline-store.ts, one SQLite row per model instance in a
 *   table shaped like Gatehouse's OidcRecord (`npm run bench --
 *   --baseline-store sqlite`), in a temporary folder removed on exit.
 *
 * What serves HTTP is chosen by BENCH_HOST:
 * - node (the default): Node's http server calls the provider.
 * - fastify: a Fastify 5 app mounts the provider as Gatehouse does
 *   (src/plugins/oidc.ts: a catch-all route, the body parsers removed, the
 *   reply hijacked) and does nothing else: no logger, request ids, hooks,
 *   limits or metrics. What Fastify's own request path costs the provider.
 *
 * Run as a child process by bench/run.ts; configured through the environment:
 * PORT, BENCH_CLIENT (JSON client metadata), BENCH_ACCOUNT_ID, BENCH_STORE,
 * BENCH_HOST.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";
import MemoryAdapter from "oidc-provider/lib/adapters/memory_adapter.js";
import LRU from "oidc-provider/lib/helpers/lru.js";
import Fastify from "fastify";
import { baselineHosts, baselineStores, choiceOf, createSqliteStore, type SqliteStore } from "./baseline-store.ts";

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const client = JSON.parse(process.env.BENCH_CLIENT ?? "{}") as Record<string, unknown>;
const accountId = process.env.BENCH_ACCOUNT_ID ?? "bench-account";

const { privateKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: "RS256", use: "sig", kid: "baseline-rs256" };

const storeKind = choiceOf("BENCH_STORE", process.env.BENCH_STORE ?? "memory", baselineStores);
const hostKind = choiceOf("BENCH_HOST", process.env.BENCH_HOST ?? "node", baselineHosts);

function memoryAdapter(): (model: string) => never {
  const store = new LRU({ maxSize: 10_000_000 });
  return (model) => new MemoryAdapter(model, store) as never;
}

function sqliteAdapter(): SqliteStore["adapter"] {
  const store = createSqliteStore();
  // Removes the database's folder however the process ends, short of SIGKILL:
  // bench/servers.ts stops the baseline with SIGTERM; Ctrl-C sends SIGINT.
  process.on("exit", () => store.close());
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => process.exit(0));
  return store.adapter;
}

const provider = new Provider(issuer, {
  adapter: storeKind === "sqlite" ? sqliteAdapter() : memoryAdapter(),
  clients: [client as never],
  jwks: { keys: [jwk as never] },
  cookies: { keys: [randomBytes(32).toString("base64url")] },
  scopes: ["openid", "profile", "email", "offline_access"],
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  rotateRefreshToken: true,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, sub) {
    return { accountId: sub, claims: () => ({ sub, email: "bench@example.test", email_verified: true, name: "Bench" }) };
  },
});

const callback = provider.callback();

/** Finishes login and consent at once for the benchmark account (oidc-provider's interactionFinished). */
async function finishInteraction(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  const grant = new provider.Grant({ accountId, clientId: String(details.params.client_id) });
  grant.addOIDCScope(String(details.params.scope));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

function serve(req: IncomingMessage, res: ServerResponse): void {
  if (req.url?.startsWith("/interaction/")) {
    finishInteraction(req, res).catch((error: unknown) => {
      res.statusCode = 500;
      res.end(String(error));
    });
    return;
  }
  callback(req, res);
}

if (hostKind === "fastify") {
  const app = Fastify({ logger: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, _payload, done) => done(null));
  app.all("/*", (request, reply) => {
    reply.hijack();
    serve(request.raw, reply.raw);
  });
  await app.listen({ port, host: "127.0.0.1" });
} else {
  await new Promise<void>((resolve) => createServer(serve).listen(port, "127.0.0.1", resolve));
}
process.stdout.write(`baseline (${storeKind} store, ${hostKind} host) listening on ${issuer}\n`);
