/**
 * Deletes expired oidc-provider rows, WebAuthn challenges and email links on a schedule so that nothing grows
 * without bound (docs/ARCHITECTURE.md, "Data model"). Reads already ignore expired rows; this only
 * reclaims space. Running it on several instances at once is harmless.
 */
import type { FastifyBaseLogger } from "fastify";
import type { Database } from "../db/database.ts";
import { deleteExpiredOidcRecords } from "../db/oidc-records.ts";
import { deleteExpiredChallenges } from "../db/passkeys.ts";
import { deleteExpiredEmailLinks } from "../db/email-links.ts";

export interface Sweeper {
  /** One sweep now; returns the number of rows deleted. */
  sweep(): Promise<number>;
  stop(): void;
}

export function startSweeper(db: Database, intervalSeconds: number, log: FastifyBaseLogger): Sweeper {
  const sweep = async () => {
    const deleted = await deleteExpiredOidcRecords(db);
    const challenges = await deleteExpiredChallenges(db);
    const emailLinks = await deleteExpiredEmailLinks(db);
    if (deleted > 0 || challenges > 0 || emailLinks > 0) log.info({ deleted, challenges, emailLinks }, "swept expired rows");
    return deleted + challenges + emailLinks;
  };
  const timer = setInterval(() => {
    sweep().catch((error) => log.error({ err: error }, "sweep of expired rows failed"));
  }, intervalSeconds * 1000);
  timer.unref();
  return { sweep, stop: () => clearInterval(timer) };
}
