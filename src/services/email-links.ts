/**
 * Single-use links sent by email (docs/account-lifecycle.md): a 256-bit
 * random token in the URL, only its keyed hash in the database (RFC 6819
 * section 5.1.4.1.3; crypto/stored-ids.ts). A link is refused once used,
 * once expired, and once a newer link for the same user and purpose was
 * issued (OWASP Forgot Password Cheat Sheet, "URL tokens"). Every issue, use
 * and refusal is audited with the user id and never the token.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Database, Queryable, Tx } from "../db/transaction.ts";
import type { StoredIds } from "../crypto/stored-ids.ts";
import { findEmailLink, insertEmailLink, markEmailLinkUsed, type EmailLinkRow } from "../db/email-links.ts";
import { appendAuditEvent, recordAuditEvent, type AuditInput } from "./audit.ts";
import { AppError } from "../errors.ts";

export type EmailLinkPurpose = "verify-email" | "password-reset" | "invitation";
/**
 * Not sent by email: the short-lived ticket that signs a browser in after a
 * reset or an accepted invitation (services/account-lifecycle.ts), with the
 * authentication method (RFC 8176) the person just used: a password or a passkey.
 */
export type SignInPurpose = "sign-in:pwd" | "sign-in:pop";
export type LinkPurpose = EmailLinkPurpose | SignInPurpose;

const isSignIn = (purpose: string) => purpose.startsWith("sign-in:");

/** How long a link works: an hour for a reset or a verification, a week for an invitation. */
export const linkLifetimeMs: Record<LinkPurpose, number> = {
  "verify-email": 60 * 60 * 1000,
  "password-reset": 60 * 60 * 1000,
  invitation: 7 * 24 * 60 * 60 * 1000,
  "sign-in:pwd": 2 * 60 * 1000,
  "sign-in:pop": 2 * 60 * 1000,
};

/** Where each link points, below the issuer. */
export const linkPaths: Record<EmailLinkPurpose, string> = {
  "verify-email": "/email/verify/",
  "password-reset": "/password/reset/",
  invitation: "/invitation/",
};

export type LinkRefusal = "used" | "expired" | "superseded" | "wrong_purpose" | "unknown";

export type LinkCheck = { ok: true; link: EmailLinkRow } | { ok: false; reason: LinkRefusal; userId?: string };

type Context = Pick<AuditInput, "ip" | "userAgent">;

/** 32 random bytes, base64url: 43 characters. */
const tokenPattern = /^[A-Za-z0-9_-]{43}$/;

/**
 * Issues a link inside `tx` and returns its token, which goes into the URL
 * of one email and nowhere else. Older live links of the same user and
 * purpose stop working. Audited as email_link.sent (except sign-in tickets).
 */
export async function issueEmailLink(
  tx: Tx,
  db: Database,
  storedIds: StoredIds,
  input: { userId: string; purpose: LinkPurpose; actor?: Pick<AuditInput, "actorType" | "actorId"> } & Context,
): Promise<string> {
  const token = randomBytes(32).toString("base64url");
  const id = randomUUID();
  await insertEmailLink(tx, {
    id,
    tokenHash: storedIds.of(token),
    userId: input.userId,
    purpose: input.purpose,
    expiresAt: new Date(Date.now() + linkLifetimeMs[input.purpose]),
  });
  if (!isSignIn(input.purpose)) {
    await appendAuditEvent(tx, db, {
      type: "email_link.sent",
      ...(input.actor ?? { actorType: "system" }),
      userId: input.userId,
      ip: input.ip,
      userAgent: input.userAgent,
      data: { purpose: input.purpose, link_id: id },
    });
  }
  return token;
}

/**
 * Looks a presented token up without using it: whether it would be accepted
 * for `purpose` now, or why not. Writes nothing.
 */
export async function checkEmailLink(
  db: Queryable,
  storedIds: StoredIds,
  token: string,
  purpose: LinkPurpose | readonly LinkPurpose[],
  now = new Date(),
): Promise<LinkCheck> {
  if (!tokenPattern.test(token)) return { ok: false, reason: "unknown" };
  const link = await findEmailLink(db, storedIds.candidates(token));
  if (!link) return { ok: false, reason: "unknown" };
  return judge(link, purpose, now);
}

function judge(link: EmailLinkRow, purpose: LinkPurpose | readonly LinkPurpose[], now: Date): LinkCheck {
  const refuse = (reason: LinkRefusal): LinkCheck => ({ ok: false, reason, userId: link.userId });
  if (!(typeof purpose === "string" ? [purpose] : purpose).includes(link.purpose as LinkPurpose)) return refuse("wrong_purpose");
  if (link.usedAt) return refuse("used");
  if (link.supersededAt) return refuse("superseded");
  if (link.expiresAt.getTime() <= now.getTime()) return refuse("expired");
  return { ok: true, link };
}

/**
 * Uses a checked link inside `tx`: one compare-and-set, so that of two
 * parallel uses exactly one succeeds; the loser gets EmailLinkRefusedError
 * (rolling its transaction back) with the reason read afterwards.
 * Audited as email_link.used.
 */
export async function useEmailLink(tx: Tx, db: Database, link: EmailLinkRow, context: Context): Promise<void> {
  if (!(await markEmailLinkUsed(tx, link.id))) {
    const now = await findEmailLink(tx, [link.tokenHash]);
    const check = now ? judge(now, link.purpose as LinkPurpose, new Date()) : undefined;
    throw new EmailLinkRefusedError(check && !check.ok ? check.reason : "used", link.userId);
  }
  if (!isSignIn(link.purpose)) {
    await appendAuditEvent(tx, db, {
      type: "email_link.used",
      actorType: "user",
      actorId: link.userId,
      userId: link.userId,
      ...context,
      data: { purpose: link.purpose, link_id: link.id },
    });
  }
}

/** Records a refused link (email_link.refused): the reason and the user when known, never the token. */
export async function auditRefusedLink(db: Database, purpose: LinkPurpose, refusal: { reason: LinkRefusal; userId?: string }, context: Context): Promise<void> {
  if (isSignIn(purpose)) return;
  await recordAuditEvent(db, {
    type: "email_link.refused",
    actorType: "user",
    actorId: refusal.userId,
    userId: refusal.userId,
    ...context,
    data: { purpose, reason: refusal.reason },
  });
}

/** What the person who clicked a refused link is told: no detail beyond used or expired. */
export const refusedLinkMessage: Record<LinkRefusal, string> = {
  used: "This link was already used. Ask for a new one.",
  expired: "This link has expired. Ask for a new one.",
  superseded: "A newer link was sent: use the latest email, or ask for a new one.",
  wrong_purpose: "This link is not valid. Ask for a new one.",
  unknown: "This link is not valid. Ask for a new one.",
};

export class EmailLinkRefusedError extends AppError {
  constructor(
    readonly reason: LinkRefusal,
    readonly userId?: string,
  ) {
    // 410 would fit "gone"; the error handler knows 400 and 404: a refused link is a bad request.
    super("invalid_request", refusedLinkMessage[reason]);
    this.name = "EmailLinkRefusedError";
  }
}
