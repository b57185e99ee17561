/**
 * Deletes expired oidc-provider rows, WebAuthn challenges, email links a week
 * past their expiry, and old sent or given-up emails on a schedule so that nothing grows
 * without bound (docs/ARCHITECTURE.md, "Data model"). Reads already ignore expired rows; this only
 * reclaims space. Running it on several instances at once is harmless.
 */
import type { FastifyBaseLogger } from "fastify";
import type { Database } from "../db/database.ts";
import { deleteExpiredOidcRecords } from "../db/oidc-records.ts";
import { deleteExpiredChallenges } from "../db/passkeys.ts";
import { deleteExpiredEmailLinks } from "../db/email-links.ts";
import { deleteFinishedEmails } from "../db/email-outbox.ts";

/** Sent and given-up emails are kept this long (for operators' questions), then deleted: their bodies may hold links with tokens. */
export const emailRetentionMs = 7 * 24 * 3600 * 1000;

export interface Sweeper {
  /** One sweep now; returns the number of rows deleted. */
  sweep(): Promise<number>;
  stop(): void;
}

export function startSweeper(db: Database, intervalSeconds: number, log: FastifyBaseLogger): Sweeper {
  let stopped = false;
  let running = false;
  const sweep = async () => {
    const deleted = await deleteExpiredOidcRecords(db);
    const challenges = await deleteExpiredChallenges(db);
    const emails = await deleteFinishedEmails(db, new Date(Date.now() - emailRetentionMs));
    const emailLinks = await deleteExpiredEmailLinks(db);
    if (deleted > 0 || challenges > 0 || emails > 0 || emailLinks > 0) {
      // emailLinks only when there were some: the line's usual fields stay as they were.
      log.info({ deleted, challenges, emails, ...(emailLinks > 0 && { emailLinks }) }, "swept expired rows");
    }
    return deleted + challenges + emails + emailLinks;
  };
  const timer = setInterval(() => {
    // One scheduled sweep at a time, and none once stopped.
    if (running || stopped) return;
    running = true;
    sweep()
      .catch((error) => log.error({ err: error }, "sweep of expired rows failed"))
      .finally(() => {
        running = false;
      });
  }, intervalSeconds * 1000);
  timer.unref();
  return {
    sweep,
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
