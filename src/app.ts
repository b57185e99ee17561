/**
 * buildApp(): the whole application as a Fastify instance, from explicit
 * dependencies. It never listens: server.ts does, and tests use inject() or
 * listen on 127.0.0.1 themselves.
 */
import { randomUUID } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import type { Config } from "./config.ts";
import type { Database } from "./db/database.ts";
import type { MasterKeyRing } from "./crypto/master-keys.ts";
import { loggerOptions } from "./logger.ts";
import { loadSigningKeys } from "./oidc/keys.ts";
import { createProvider } from "./oidc/provider.ts";
import { ProviderHost } from "./oidc/provider-host.ts";
import { createClientStore } from "./oidc/client-store.ts";
import { oidcPlugin } from "./plugins/oidc.ts";
import { errorHandlerPlugin } from "./plugins/error-handler.ts";
import { healthRoutes } from "./routes/health.ts";
import { startSweeper } from "./jobs/sweeper.ts";

export interface AppDeps {
  config: Config;
  db: Database;
  ring: MasterKeyRing;
  /** Override the logger (tests pass false). */
  logger?: boolean | NonNullable<Parameters<typeof Fastify>[0]>["logger"];
}

declare module "fastify" {
  interface FastifyInstance {
    providerHost: ProviderHost;
  }
}

/** The cookie signing keys: COOKIE_SECRETS, or outside production a key derived from the master key. */
export function cookieKeysFor(config: Config, ring: MasterKeyRing): string[] {
  return config.cookieSecrets ? [...config.cookieSecrets] : [ring.derive("cookie-keys")];
}

export async function buildApp({ config, db, ring, logger }: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: logger ?? loggerOptions(config),
    // Fastify accepts a hop count too; its types only list the other forms.
    trustProxy: config.trustProxy as boolean | string,
    bodyLimit: 64 * 1024,
    genReqId: () => randomUUID(),
    // Never take a request id from the client: it would be a log-injection vector.
    requestIdHeader: false,
    return503OnClosing: true,
  });

  const clients = createClientStore(db.prisma, ring);
  const keys = await loadSigningKeys(db, ring);
  if (keys.length === 0) throw new Error("no signing keys in the database: run `gatehouse migrate` and start once, or `gatehouse keys import`");
  const host = new ProviderHost(createProvider({ config, prisma: db.prisma, clients, keys, cookieKeys: cookieKeysFor(config, ring) }));
  app.decorate("providerHost", host);

  app.addHook("onSend", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });

  await app.register(errorHandlerPlugin);
  await app.register(healthRoutes, { db, host });
  await app.register(oidcPlugin, { host });

  const sweeper = startSweeper(db, config.sweepInterval, app.log);
  app.addHook("onClose", async () => sweeper.stop());
  return app;
}
