/**
 * Notices about changes to an account (a password set, a passkey added or
 * removed, a second factor turned on or off), so that its owner learns of a
 * change they did not make (OWASP Authentication Cheat Sheet, "Change
 * password feature"; NIST SP 800-63B section 6.1.2.2). Queued in the change's
 * own transaction: the notice is sent if and only if the change committed.
 */
import type { Config } from "../config.ts";
import type { Database, Tx } from "../db/transaction.ts";
import type { EmailMessage } from "./messages.ts";
import { emailEnabled, queueEmail } from "./outbox.ts";

/** Queues `message` to `user` inside `tx`; does nothing without a config or when email is off. */
export async function queueAccountNotice(
  deps: { db: Database; config: Config | undefined },
  tx: Tx,
  user: { id: string; email: string; name: string | null },
  message: EmailMessage,
): Promise<void> {
  const { db, config } = deps;
  if (!config || !emailEnabled(config)) return;
  await queueEmail({ db, config }, { to: user.email, userId: user.id, recipientName: user.name, message }, tx);
}
