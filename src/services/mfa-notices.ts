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
  /**
   * The audit event that records the change, when the caller's is more
   * specific than mfa.enabled / mfa.disabled (an operator's reset): one
   * event per change.
   */
  auditEvent?: { type: string; data: Record<string, unknown> };
}

export async function noticeMfaChanged(ctx: MfaNoticeContext, userId: string, change: "enabled" | "disabled"): Promise<void> {
  const recorded = ctx.auditEvent ?? { type: `mfa.${change}`, data: {} };
  const event = { type: recorded.type, ...ctx.actor, userId, data: { method: "totp", change, ...recorded.data } };
  if (ctx.tx) await appendAuditEvent(ctx.tx, ctx.db, event);
  else await recordAuditEvent(ctx.db, event);
}
