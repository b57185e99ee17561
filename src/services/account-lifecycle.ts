/**
 * The account lifecycle by email (docs/account-lifecycle.md): verifying an
 * address, resetting a forgotten password, signing up (REGISTRATION=open)
 * and accepting an invitation. Each flow sends a single-use link
 * (services/email-links.ts) through the outbox (email/outbox.ts), so a
 * request never waits on SMTP, and the email is queued in the transaction
 * that issued its link.
 *
 * Enumeration (OWASP Forgot Password Cheat Sheet; OWASP Authentication Cheat
 * Sheet, "Authentication and error messages"): the anonymous requests
 * (requestPasswordReset, registerAccount) return nothing and are meant to run
 * after the answer was sent, so neither the answer nor its timing depends on
 * whether the address has an account.
 */
import { randomUUID } from "node:crypto";
import { transaction, type Database, type Tx } from "../db/transaction.ts";
import { findUserByEmail, findUserById, insertUser, updateUserRow, type UserRow } from "../db/users.ts";
import { countPasskeysOfUser } from "../db/passkeys.ts";
import { isUniqueViolation } from "../db/errors.ts";
import type { Config } from "../config.ts";
import { emailEnabled } from "../email/outbox.ts";
import type { StoredIds } from "../crypto/stored-ids.ts";
import { checkPasswordPolicy, hashPassword, type Argon2Params } from "../auth/passwords.ts";
import type { EmailSendLimiter } from "../auth/email-send-limiter.ts";
import type { RelyingParty } from "../auth/passkeys.ts";
import type { RegistrationResponseJSON } from "@simplewebauthn/server";
import { linkTo, queueEmail } from "../email/outbox.ts";
import type { EmailMessage } from "../email/messages.ts";
import { appendAuditEvent, type AuditInput } from "./audit.ts";
import { revokeUserAccess } from "./revocation.ts";
import { createUser, normalizeEmail, type UserView } from "./users.ts";
import { finishPasskeyRegistration, type PasskeyView } from "./passkeys.ts";
import type { Actor } from "./actor.ts";
import {
  auditRefusedLink,
  checkEmailLink,
  EmailLinkRefusedError,
  issueEmailLink,
  linkPaths,
  useEmailLink,
  type EmailLinkPurpose,
  type SignInPurpose,
} from "./email-links.ts";
import { supersedeEmailLinks, type EmailLinkRow } from "../db/email-links.ts";
import { AppError } from "../errors.ts";

export interface LifecycleDeps {
  db: Database;
  config: Config;
  storedIds: StoredIds;
  argon2: Argon2Params;
  /** Emails per address from anonymous requests and resends. */
  sendLimiter: EmailSendLimiter;
}

type Context = Pick<AuditInput, "ip" | "userAgent">;

/** A ticket that signs the browser in (see takeSignInTicket), and whose it is. */
export interface SignedInResult {
  userId: string;
  signInTicket: string;
}

/** Queues `message` to `user` inside `tx`. */
async function queueTo(deps: LifecycleDeps, tx: Tx, user: Pick<UserRow, "id" | "email" | "name">, message: EmailMessage): Promise<void> {
  await queueEmail({ db: deps.db, config: deps.config }, { to: user.email, userId: user.id, recipientName: user.name ?? undefined, message }, tx);
}

/** Issues a link of `purpose` to `user` and queues its email, in one transaction. */
async function sendLink(deps: LifecycleDeps, user: UserRow, purpose: EmailLinkPurpose, actor: Pick<AuditInput, "actorType" | "actorId"> & Context): Promise<void> {
  await transaction(deps.db, async (tx) => {
    const token = await issueEmailLink(tx, deps.db, deps.storedIds, { userId: user.id, purpose, actor, ip: actor.ip, userAgent: actor.userAgent });
    const link = linkTo(deps.config, linkPaths[purpose] + token);
    const message: EmailMessage = purpose === "verify-email" ? { kind: "verify-email", link } : purpose === "password-reset" ? { kind: "password-reset", link } : { kind: "invitation", link };
    await queueTo(deps, tx, user, message);
  });
}

/**
 * Checks a presented link for `purpose` without using it; a refusal is
 * audited (email_link.refused) and thrown as EmailLinkRefusedError.
 */
export async function openEmailLink(deps: Pick<LifecycleDeps, "db" | "storedIds">, token: string, purpose: EmailLinkPurpose, context: Context): Promise<{ link: EmailLinkRow; user: UserRow }> {
  const check = await checkEmailLink(deps.db, deps.storedIds, token, purpose);
  const user = check.ok ? await findUserById(deps.db, check.link.userId) : null;
  if (!check.ok || !user || user.disabled) {
    const refusal = check.ok ? { reason: "unknown" as const, userId: check.link.userId } : check;
    await auditRefusedLink(deps.db, purpose, refusal, context);
    throw new EmailLinkRefusedError(refusal.reason, refusal.userId);
  }
  return { link: check.link, user };
}

/** Runs `work` with the link used inside its transaction; a lost race is audited and rethrown. */
async function withLinkUsed<T>(deps: LifecycleDeps, link: EmailLinkRow, context: Context, work: (tx: Tx) => Promise<T>): Promise<T> {
  try {
    return await transaction(deps.db, async (tx) => {
      await useEmailLink(tx, deps.db, link, context);
      return work(tx);
    });
  } catch (error) {
    if (error instanceof EmailLinkRefusedError) await auditRefusedLink(deps.db, link.purpose as EmailLinkPurpose, error, context);
    throw error;
  }
}

/** Issues the ticket that signs the browser in, inside `tx`. */
function issueSignInTicket(deps: LifecycleDeps, tx: Tx, userId: string, purpose: SignInPurpose): Promise<string> {
  return issueEmailLink(tx, deps.db, deps.storedIds, { userId, purpose });
}

/**
 * Uses a sign-in ticket (one compare-and-set, like a link) and returns the
 * user to sign in and the authentication methods (RFC 8176) they used, or
 * undefined when the ticket is not valid.
 */
export async function takeSignInTicket(deps: Pick<LifecycleDeps, "db" | "storedIds">, ticket: string): Promise<{ userId: string; amr: string[] } | undefined> {
  const check = await checkEmailLink(deps.db, deps.storedIds, ticket, ["sign-in:pwd", "sign-in:pop"]);
  if (!check.ok) return undefined;
  const user = await findUserById(deps.db, check.link.userId);
  if (!user || user.disabled) return undefined;
  try {
    await transaction(deps.db, (tx) => useEmailLink(tx, deps.db, check.link, {}));
  } catch (error) {
    if (error instanceof EmailLinkRefusedError) return undefined;
    throw error;
  }
  return { userId: user.id, amr: check.link.purpose === "sign-in:pop" ? ["pop"] : ["pwd"] };
}

function requireEmail(config: Config): void {
  if (!emailEnabled(config)) throw new AppError("invalid_request", "email is off on this server (set SMTP_URL): no link can be sent");
}

function checkNewPassword(password: string): void {
  const problem = checkPasswordPolicy(password);
  if (problem) throw new AppError("invalid_password", problem.charAt(0).toUpperCase() + problem.slice(1) + ".");
}

// ---- Email verification ----------------------------------------------------

/** Sends (again) a verification link to a user whose email is not verified; false when over the address's limit. */
export async function sendVerificationEmail(deps: LifecycleDeps, user: UserRow, context: Context): Promise<boolean> {
  requireEmail(deps.config);
  if (user.emailVerified) return true;
  if (!(await deps.sendLimiter.allow(user.email))) return false;
  await sendLink(deps, user, "verify-email", { actorType: "user", actorId: user.id, ...context });
  return true;
}

/** Uses a verification link: the email is verified from now on. */
export async function verifyEmail(deps: LifecycleDeps, token: string, context: Context): Promise<UserRow> {
  const { link, user } = await openEmailLink(deps, token, "verify-email", context);
  return withLinkUsed(deps, link, context, async (tx) => {
    const updated = await updateUserRow(tx, user.id, { emailVerified: true });
    await appendAuditEvent(tx, deps.db, { type: "email.verified", actorType: "user", actorId: user.id, userId: user.id, ...context, data: {} });
    return updated;
  });
}

// ---- Forgotten password ----------------------------------------------------

/**
 * "Forgot password?": emails a reset link when the address has an enabled
 * account and is under its send limit, and otherwise does nothing. Returns
 * nothing either way; run it after answering (see the module comment).
 */
export async function requestPasswordReset(deps: LifecycleDeps, email: string, context: Context): Promise<void> {
  if (!emailEnabled(deps.config)) return;
  if (!(await deps.sendLimiter.allow(email))) return;
  const user = await findUserByEmail(deps.db, email);
  if (!user || user.disabled) return;
  await sendLink(deps, user, "password-reset", { actorType: "user", actorId: user.id, ...context });
}

/**
 * Uses a reset link: sets the password (which must pass the policy), marks
 * the email verified (the link proved the mailbox), revokes every session
 * and grant of the user, and queues a "password changed" notice, in one
 * transaction. A passkey-only user sets their first password this way, which
 * is how a lost passkey is recovered. Returns a ticket that signs the
 * browser in.
 */
export async function resetPassword(deps: LifecycleDeps, token: string, newPassword: string, context: Context): Promise<SignedInResult> {
  const { link, user } = await openEmailLink(deps, token, "password-reset", context);
  return setPasswordWithLink(deps, link, user, newPassword, context);
}

async function setPasswordWithLink(deps: LifecycleDeps, link: EmailLinkRow, user: UserRow, newPassword: string, context: Context): Promise<SignedInResult> {
  checkNewPassword(newPassword);
  const passwordHash = await hashPassword(newPassword, deps.argon2);
  return withLinkUsed(deps, link, context, async (tx) => {
    await updateUserRow(tx, user.id, { passwordHash, emailVerified: true });
    // The other live reset or invitation link (this one is used) must not replace this password.
    await supersedeEmailLinks(tx, user.id);
    const revoked = await revokeUserAccess(tx, user.id);
    await appendAuditEvent(tx, deps.db, {
      type: "password.changed",
      actorType: "user",
      actorId: user.id,
      userId: user.id,
      ...context,
      data: { via: link.purpose, first_password: user.passwordHash === null, revoked },
    });
    // Also after an invitation: whoever set it, the mailbox's owner hears of it.
    await queueTo(deps, tx, user, { kind: "password-changed" });
    return { userId: user.id, signInTicket: await issueSignInTicket(deps, tx, user.id, "sign-in:pwd") };
  });
}

// ---- Registration ----------------------------------------------------------

export interface RegistrationInput {
  email: string;
  name?: string;
  password: string;
}

/**
 * Checks what can be checked without looking at accounts (the address's
 * form, the password policy): its errors may be shown at once. Returns the
 * normalised email.
 */
export function checkRegistration(input: RegistrationInput): string {
  let email: string;
  try {
    email = normalizeEmail(input.email);
  } catch {
    throw new AppError("invalid_request", "Enter a valid email address.");
  }
  if ((input.name ?? "").length > 200) throw new AppError("invalid_request", "The name is too long.");
  checkNewPassword(input.password);
  return email;
}

/**
 * Signs up (REGISTRATION=open): a new address gets an unverified account and
 * a verification link; an address that has an account gets, instead, a
 * "someone tried to register with your email" message, and nothing changes.
 * Run after answering; `input` passed checkRegistration.
 */
export async function registerAccount(deps: LifecycleDeps, input: RegistrationInput, context: Context): Promise<void> {
  if (deps.config.registration !== "open" || !emailEnabled(deps.config)) return;
  const email = normalizeEmail(input.email);
  if (!(await deps.sendLimiter.allow(email))) return;
  const existing = await findUserByEmail(deps.db, email);
  if (existing) return notifyRegistrationAttempt(deps, existing, context);
  const passwordHash = await hashPassword(input.password, deps.argon2);
  try {
    await transaction(deps.db, async (tx) => {
      const user = await insertUser(tx, { id: randomUUID(), email, name: input.name?.trim() || null, role: "member", passwordHash, selfRegistered: true });
      await appendAuditEvent(tx, deps.db, {
        type: "user.registered",
        actorType: "user",
        actorId: user.id,
        userId: user.id,
        ...context,
        data: { email },
      });
      const token = await issueEmailLink(tx, deps.db, deps.storedIds, { userId: user.id, purpose: "verify-email", actor: { actorType: "user", actorId: user.id }, ...context });
      // Not greeted by the name typed at sign-up: whoever typed the address chose it,
      // and the address is not proven yet (no attacker's text in a mail to a stranger).
      await queueTo(deps, tx, { ...user, name: null }, { kind: "verify-email", link: linkTo(deps.config, linkPaths["verify-email"] + token) });
    });
  } catch (error) {
    // Registered by a parallel request meanwhile: the owner is told, as above.
    if (!isUniqueViolation(error)) throw error;
    const owner = await findUserByEmail(deps.db, email);
    if (owner) await notifyRegistrationAttempt(deps, owner, context);
  }
}

async function notifyRegistrationAttempt(deps: LifecycleDeps, user: UserRow, context: Context): Promise<void> {
  if (user.disabled) return;
  await transaction(deps.db, async (tx) => {
    await appendAuditEvent(tx, deps.db, { type: "registration.existing_email", actorType: "system", userId: user.id, ...context, data: {} });
    await queueTo(deps, tx, user, { kind: "registration-attempt", link: linkTo(deps.config, "/password/forgot") });
  });
}

// ---- Invitations -----------------------------------------------------------

function requireInvitations(config: Config): void {
  if (config.registration === "off") throw new AppError("invalid_request", "invitations are off on this server (REGISTRATION=off): create the user with a password instead");
  requireEmail(config);
}

/**
 * Creates a user without a password and emails them an invitation (valid
 * 7 days). Refused when REGISTRATION=off or email is off.
 */
export async function inviteUser(deps: LifecycleDeps, input: { email: string; name?: string; role?: string }, actor: Actor): Promise<UserView> {
  requireInvitations(deps.config);
  const user = await createUser(deps.db, deps.argon2, { email: input.email, name: input.name, role: input.role }, actor);
  await sendInvitation(deps, user.id, actor);
  return user;
}

/**
 * Sends a user's invitation (again; the older link stops working). Refused
 * when REGISTRATION=off, email is off, or the user can already sign in (has
 * a password or a passkey): such a user resets their password instead.
 */
export async function sendInvitation(deps: LifecycleDeps, userId: string, actor: Actor): Promise<void> {
  requireInvitations(deps.config);
  const user = await findUserById(deps.db, userId);
  if (!user) throw new AppError("not_found", "no such user");
  if (user.disabled) throw new AppError("conflict", "the user is disabled");
  if (user.passwordHash || (await countPasskeysOfUser(deps.db, user.id)) > 0) {
    throw new AppError("conflict", "the user already has a password or a passkey: they can use \"Forgot password?\" instead");
  }
  await sendLink(deps, user, "invitation", { actorType: actor.actorType, actorId: actor.actorId, ip: actor.ip, userAgent: actor.userAgent });
}

/** Accepts an invitation by setting a password; the email is verified and the browser signed in. */
export async function acceptInvitationWithPassword(deps: LifecycleDeps, token: string, newPassword: string, context: Context): Promise<SignedInResult> {
  const { link, user } = await openEmailLink(deps, token, "invitation", context);
  return setPasswordWithLink(deps, link, user, newPassword, context);
}

/**
 * Accepts an invitation by adding a passkey (the challenge was started for
 * the invited user with startPasskeyRegistration). The passkey is verified
 * and stored first (in its own transaction, as on /account), then the link
 * is used; if a parallel acceptance used the link in between, the passkey
 * stays (it was added by whoever held the link) and this one is refused.
 */
export async function acceptInvitationWithPasskey(
  deps: LifecycleDeps,
  rp: RelyingParty,
  token: string,
  input: { challengeId: string; response: RegistrationResponseJSON; name?: string },
  context: Context,
): Promise<SignedInResult & { passkey: PasskeyView }> {
  const { link, user } = await openEmailLink(deps, token, "invitation", context);
  // With the config: the "a passkey was added" notice, as on /account.
  const passkey = await finishPasskeyRegistration(deps.db, rp, user, input, context, deps.config);
  return withLinkUsed(deps, link, context, async (tx) => {
    await updateUserRow(tx, user.id, { emailVerified: true });
    // The user can sign in now: a reset link sent meanwhile no longer sets a first password.
    await supersedeEmailLinks(tx, user.id);
    return { userId: user.id, passkey, signInTicket: await issueSignInTicket(deps, tx, user.id, "sign-in:pop") };
  });
}
