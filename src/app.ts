/**
 * buildApp(): the whole application as a Fastify instance, from explicit
 * dependencies. It never listens: server.ts does, and tests use inject() or
 * listen on 127.0.0.1 themselves.
 */
import { randomUUID } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import fastifyStatic from "@fastify/static";
import type { Config } from "./config.ts";
import type { Database } from "./db/database.ts";
import { cookieKeysFor, type MasterKeyRing } from "./crypto/master-keys.ts";
import { storedIdsFor } from "./crypto/stored-ids.ts";
import type { AppContext } from "./context.ts";
import { loggerOptions } from "./logger.ts";
import { loadKeySet, type KeySet } from "./oidc/keys.ts";
import { createProvider } from "./oidc/provider.ts";
import { ProviderHost } from "./oidc/provider-host.ts";
import { createCachedClientStore } from "./oidc/client-store.ts";
import { observeProvider, type ProviderObserver } from "./oidc/events.ts";
import { createCsrf } from "./auth/csrf.ts";
import { connectRedis, createMemoryCounterStore, createRedisCounterStore } from "./auth/counter-store.ts";
import { createSignInLimiter } from "./auth/sign-in-limiter.ts";
import { createUserCodeLimiter, defaultUserCodeLimits } from "./auth/user-code-limiter.ts";
import { createMetrics } from "./metrics.ts";
import { createEmailSendLimiter } from "./auth/email-send-limiter.ts";
import { issuerHeadersPlugin, oidcPlugin } from "./plugins/oidc.ts";
import { errorHandlerPlugin } from "./plugins/error-handler.ts";
import { securityPlugin } from "./plugins/security.ts";
import { rateLimitPlugin } from "./plugins/rate-limit.ts";
import { metricsPlugin } from "./plugins/metrics.ts";
import { healthRoutes } from "./routes/health.ts";
import { interactionRoutes } from "./interaction/routes.ts";
import { accountRoutes } from "./account/routes.ts";
import { lifecycleRoutes } from "./account/lifecycle-routes.ts";
import { adminRoutes } from "./admin/routes.ts";
import { startSweeper } from "./jobs/sweeper.ts";
import { startKeySetWatcher, type KeySetWatcher } from "./jobs/key-set.ts";
import { startEmailWorker, type EmailWorker } from "./email/worker.ts";
import { keyPolicyOf } from "./services/signing-keys.ts";
import { staticDir } from "./views.ts";
import { buildValidator } from "./plugins/validation.ts";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

// The package's exports do not list its browser bundle: find it next to its entry point.
const webauthnBrowserBundle = join(dirname(createRequire(import.meta.url).resolve("@simplewebauthn/browser")), "../dist/bundle/index.umd.min.js");

export interface AppDeps {
  config: Config;
  db: Database;
  ring: MasterKeyRing;
  /** Override the logger (tests pass false). */
  logger?: FastifyServerOptions["logger"];
}

declare module "fastify" {
  interface FastifyInstance {
    context: AppContext;
    /** Follows the key set in the database and runs the key lifecycle (jobs/key-set.ts). */
    keySetWatcher: KeySetWatcher;
    /** Sends queued email (email/worker.ts); undefined when email is off. */
    emailWorker: EmailWorker | undefined;
  }
}

/**
 * Fastify's trustProxy from TRUST_PROXY. `true` means one proxy in front:
 * only the immediate peer is trusted (hop 0), so request.ip is the right-most
 * X-Forwarded-For entry, the one that proxy appended. (Fastify's own `true`
 * trusts every hop and returns the left-most entry, which the client
 * writes.) A list of addresses or CIDRs is proxy-addr's right-to-left walk,
 * which stops at the first address not in the list.
 */
function trustProxyFor(setting: Config["trustProxy"]): boolean | string | ((address: string, hop: number) => boolean) {
  return setting === true ? (_address, hop) => hop === 0 : setting;
}

export async function buildApp({ config, db, ring, logger }: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: logger ?? loggerOptions(config),
    trustProxy: trustProxyFor(config.trustProxy),
    bodyLimit: 64 * 1024,
    genReqId: () => randomUUID(),
    // Never take a request id from the client: it would be a log-injection vector.
    requestIdHeader: false,
    return503OnClosing: true,
    // Ids up to 128 characters (the schemas' limit) must reach their routes.
    maxParamLength: 200,
    schemaController: { compilersFactory: { buildValidator } },
  });

  const keySet = await loadKeySet(db, ring);
  if (keySet.keys.length === 0) throw new Error("no signing keys in the database: start the server (it creates them) before building the app");
  const clients = await createCachedClientStore(db, ring, (message, err) => app.log.warn({ err }, message));
  const metrics = createMetrics(() => db.statements());
  const storedIds = storedIdsFor(ring);
  const cookieKeys = cookieKeysFor(config, ring);
  // Every provider, the first and each one swapped in when the key set
  // changes (jobs/key-set.ts), is built and set up here and only here.
  const observers: ProviderObserver[] = [];
  const buildProvider = ({ keys }: KeySet) => {
    const provider = createProvider({ config, db, clients, storedIds, keys, cookieKeys });
    observers.push(observeProvider(provider, { db, metrics, log: app.log }));
    return provider;
  };
  const host = new ProviderHost(buildProvider(keySet), keySet);
  const redis = config.redisUrl ? connectRedis(config.redisUrl) : undefined;
  const counters = redis ? createRedisCounterStore(redis) : createMemoryCounterStore();
  const limiter = createSignInLimiter(counters, {
    maxFailures: config.signInMaxFailures,
    maxFailuresPerIp: config.signInMaxFailuresPerIp,
    windowMs: config.signInWindow * 1000,
    baseDelayMs: 250,
  });
  const context: AppContext = {
    config,
    db,
    ring,
    storedIds,
    host,
    // Bound to an interaction or session; keyed apart from the cookie keys.
    csrf: createCsrf(ring.derive("csrf")),
    limiter,
    userCodes: createUserCodeLimiter(counters, { ...defaultUserCodeLimits, windowMs: config.signInWindow * 1000 }),
    signIn: {
      db,
      limiter,
      argon2: config.argon2,
      // Keyed apart from every other use of the master key.
      emailHashKey: ring.derive("audit-email"),
      onOutcome: (method, outcome) => metrics.signIns.inc({ method, outcome }),
      config,
    },
    metrics,
    redis,
    lifecycle: {
      db,
      config,
      storedIds,
      argon2: config.argon2,
      // Keyed apart from every other use of the master key.
      sendLimiter: createEmailSendLimiter(counters, ring.derive("email-send-limits")),
    },
  };
  app.decorate("context", context);

  app.addHook("onSend", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });

  // First, so that no route sees the client's Host or X-Forwarded-* headers.
  await app.register(issuerHeadersPlugin, { issuer: config.issuer });
  await app.register(errorHandlerPlugin);
  await app.register(metricsPlugin, context);
  await app.register(securityPlugin, { https: config.issuer.startsWith("https:") });
  await app.register(rateLimitPlugin, { redis });
  await app.register(fastifyStatic, { root: staticDir, prefix: "/static/", index: false, maxAge: "1h" });
  // @simplewebauthn/browser's own bundle, served as a static file (no build step).
  const webauthnBundle = await readFile(webauthnBrowserBundle);
  app.get("/static/simplewebauthn-browser.js", (_request, reply) => {
    reply.type("text/javascript; charset=utf-8").header("cache-control", "public, max-age=3600").send(webauthnBundle);
  });
  await app.register(healthRoutes, context);
  await app.register(interactionRoutes, context);
  await app.register(accountRoutes, context);
  await app.register(lifecycleRoutes, context);
  await app.register(adminRoutes, context);
  await app.register(oidcPlugin, context);

  const sweeper = startSweeper(db, config.sweepInterval, app.log);
  const keySetWatcher = startKeySetWatcher({ db, ring, host, build: buildProvider, policy: keyPolicyOf(config), intervalSeconds: config.keysPollInterval, log: app.log });
  app.decorate("keySetWatcher", keySetWatcher);
  const emailWorker =
    config.email.mode === "off"
      ? undefined
      : startEmailWorker({ db, config, log: app.log, emailHashKey: context.signIn.emailHashKey, onOutcome: (outcome) => metrics.emails.inc({ outcome }) });
  if (config.email.mode === "off") {
    app.log.warn("email is off (NODE_ENV=production and SMTP_URL is not set): no password reset, registration, invitations or account notices");
  }
  app.decorate("emailWorker", emailWorker);
  app.addHook("onClose", async () => {
    sweeper.stop();
    await emailWorker?.stop();
    await keySetWatcher.stop();
    await Promise.all(observers.map((o) => o.drain()));
    await counters.close();
    await clients.close();
    await redis?.quit();
  });
  return app;
}
