/**
 * What happens when a user's two-step verification is turned on or off (by
 * the user, or reset by an operator): for now the audit event; this is the
 * one place where the "two-step verification was turned on/off" email is to
 * be queued as well.
 */
import type { Database, Tx } from "../db/transaction.ts";
import { appendAuditEvent, recordAuditEvent } from "./audit.ts";
import type { Actor } from "./actor.ts";

export interface MfaNoticeContext {
  db: Database;
  /** The transaction of the change, when there is one: the notice is written with it. */
  tx?: Tx;
  actor: Actor;
}

export async function noticeMfaChanged(ctx: MfaNoticeContext, userId: string, change: "enabled" | "disabled"): Promise<void> {
  const event = { type: `mfa.${change}`, ...ctx.actor, userId, data: { method: "totp" } };
  if (ctx.tx) await appendAuditEvent(ctx.tx, ctx.db, event);
  else await recordAuditEvent(ctx.db, event);
}
