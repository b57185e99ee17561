/**
 * What happens when a user's two-step verification is turned on or off (by
 * the user, or reset by an operator): the audit event and, in the same
 * transaction, the "two-step verification was turned on/off" email to the
 * user (email/notices.ts), so that an owner learns of a change they did not
 * make.
 */
import type { Config } from "../config.ts";
import type { Database, Tx } from "../db/transaction.ts";
import { findUserById } from "../db/users.ts";
import { queueAccountNotice } from "../email/notices.ts";
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
  /** Without it (or with email off) no email is queued. */
  config?: Config | undefined;
}

export async function noticeMfaChanged(ctx: MfaNoticeContext, userId: string, change: "enabled" | "disabled"): Promise<void> {
  const recorded = ctx.auditEvent ?? { type: `mfa.${change}`, data: {} };
  const event = { type: recorded.type, ...ctx.actor, userId, data: { method: "totp", change, ...recorded.data } };
  if (!ctx.tx) {
    await recordAuditEvent(ctx.db, event);
    return;
  }
  await appendAuditEvent(ctx.tx, ctx.db, event);
  const user = await findUserById(ctx.tx, userId);
  if (user) await queueAccountNotice({ db: ctx.db, config: ctx.config }, ctx.tx, user, { kind: change === "enabled" ? "mfa-enabled" : "mfa-disabled" });
}
