/**
 * Process entry: configuration -> migrations and keys -> app -> listen, and a
 * graceful close on SIGTERM/SIGINT (stop accepting, finish requests in flight,
 * close the database).
 */
import { isIP } from "node:net";
import { buildApp } from "./app.ts";
import { bootstrap } from "./bootstrap.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";

function fail(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`gatehouse: ${message.split("\n")[0]}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fail(error);
    throw error;
  }

  const { db, ring, migrated, createdKeys } = await bootstrap(config).catch(fail);
  const app = await buildApp({ config, db, ring }).catch(async (error: unknown) => {
    await db.close();
    return fail(error);
  });
  if (migrated.length) app.log.info({ migrations: migrated }, "applied database migrations");
  if (createdKeys.length) app.log.info({ kids: createdKeys }, "created signing keys");
  if (config.keyPublishAhead < 2 * config.keysPollInterval) {
    app.log.warn(
      { keyPublishAhead: config.keyPublishAhead, keysPollInterval: config.keysPollInterval },
      "KEY_PUBLISH_AHEAD is shorter than twice KEYS_POLL_INTERVAL: after a rotation, an instance may sign with a key that another has not published yet",
    );
  }
  if (isIP(new URL(config.issuer).hostname.replace(/^\[|\]$/g, ""))) {
    app.log.warn({ issuer: config.issuer }, "the issuer's host is an IP address: passkeys need a domain name (WebAuthn RP IDs cannot be IP addresses)");
  }

  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, "shutting down");
    const timer = setTimeout(() => {
      app.log.error("graceful shutdown timed out");
      process.exit(1);
    }, 10_000);
    timer.unref();
    await app.close();
    await db.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => void close("SIGTERM"));
  process.on("SIGINT", () => void close("SIGINT"));

  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    await db.close();
    fail(error);
  }
  app.log.info({ issuer: config.issuer, database: config.databaseProvider }, "gatehouse is ready");
}

await main();
