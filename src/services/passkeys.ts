/**
 * Passkeys: registration from the account page, usernameless sign-in, and
 * removal (WebAuthn Level 3; docs/SECURITY.md). Challenges live in the database, are
 * single-use and expire after 5 minutes, so any instance can finish a
 * ceremony. A credential, its challenge's deletion and its audit event are
 * written in one transaction; a refused ceremony writes nothing but its audit.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from "@simplewebauthn/server";
import { transaction, type Database } from "../db/transaction.ts";
import type { StoredIds } from "../crypto/stored-ids.ts";
import {
  countPasskeysOfUser,
  deletePasskey,
  findPasskeyByCredentialId,
  findPasskeyOwner,
  insertChallenge,
  insertPasskey,
  listPasskeysOfUser,
  takeChallenge,
  updatePasskeyCounter,
  type PasskeyRow,
} from "../db/passkeys.ts";
import { findUserById, lockUser, userHasPassword, type UserRow } from "../db/users.ts";
import {
  checkAuthentication,
  checkRegistration,
  createAuthenticationOptions,
  createRegistrationOptions,
  type RelyingParty,
} from "../auth/passkeys.ts";
import { appendAuditEvent, type AuditInput } from "./audit.ts";
import { AppError } from "../errors.ts";
import type { Config } from "../config.ts";
import { queueAccountNotice } from "../email/notices.ts";

export const challengeTtlMs = 5 * 60 * 1000;

export interface PasskeyView {
  id: string;
  name: string;
  device_type: string;
  backed_up: boolean;
  transports: string[];
  created_at: string;
  last_used_at: string | null;
}

export function toPasskeyView(row: PasskeyRow): PasskeyView {
  return {
    id: row.id,
    name: row.name,
    device_type: row.deviceType,
    backed_up: row.backedUp,
    transports: JSON.parse(row.transports) as string[],
    created_at: row.createdAt.toISOString(),
    last_used_at: row.lastUsedAt?.toISOString() ?? null,
  };
}

export async function listPasskeys(db: Database, userId: string): Promise<PasskeyView[]> {
  return (await listPasskeysOfUser(db, userId)).map(toPasskeyView);
}

type Context = Pick<AuditInput, "ip" | "userAgent">;

/** Starts a registration for a signed-in user. */
export async function startPasskeyRegistration(db: Database, rp: RelyingParty, user: UserRow) {
  const existing = await listPasskeysOfUser(db, user.id);
  const options = await createRegistrationOptions(
    rp,
    user,
    existing.map((p) => ({ ...p, transports: JSON.parse(p.transports) as string[] })),
  );
  const challengeId = randomBytes(16).toString("base64url");
  await insertChallenge(db, {
    id: challengeId,
    challenge: options.challenge,
    purpose: "registration",
    userId: user.id,
    interactionUid: null,
    expiresAt: new Date(Date.now() + challengeTtlMs),
  });
  return { challengeId, options };
}

/**
 * Verifies and stores a new passkey; refuses a replayed, expired or foreign
 * challenge. With `config`, the owner is emailed a notice in the same
 * transaction (none when email is off).
 */
export async function finishPasskeyRegistration(
  db: Database,
  rp: RelyingParty,
  user: UserRow,
  input: { challengeId: string; response: RegistrationResponseJSON; name?: string },
  context: Context,
  config?: Config,
): Promise<PasskeyView> {
  // Taken in its own transaction: a refused attempt must still use it up.
  const challenge = await transaction(db, (tx) => takeChallenge(tx, input.challengeId));
  if (!challenge || challenge.purpose !== "registration" || challenge.userId !== user.id) {
    throw new AppError("invalid_request", "The passkey request has expired or was already used. Try again.");
  }
  let verified: Awaited<ReturnType<typeof checkRegistration>>;
  try {
    verified = await checkRegistration(rp, input.response, challenge.challenge);
  } catch (error) {
    throw new AppError("invalid_request", `The passkey could not be verified: ${(error as Error).message}`);
  }
  // Verified before the transaction: nothing waits on the write lock meanwhile.
  return transaction(db, async (tx) => {
    if (await findPasskeyByCredentialId(tx, verified.credentialId)) {
      throw new AppError("conflict", "This passkey is already registered.");
    }
    const count = await countPasskeysOfUser(tx, user.id);
    const name = input.name?.trim().slice(0, 100) || `Passkey ${count + 1}`;
    const row = await insertPasskey(tx, {
      id: randomUUID(),
      userId: user.id,
      credentialId: verified.credentialId,
      publicKey: verified.publicKey,
      counter: verified.counter,
      deviceType: verified.deviceType,
      backedUp: verified.backedUp,
      transports: JSON.stringify(verified.transports),
      name,
    });
    await appendAuditEvent(tx, db, {
      type: "passkey.added",
      actorType: "user",
      actorId: user.id,
      userId: user.id,
      ...context,
      data: { passkey_id: row.id, name, device_type: row.deviceType, backed_up: row.backedUp },
    });
    await queueAccountNotice({ db, config }, tx, user, { kind: "passkey-added", passkeyName: name });
    return toPasskeyView(row);
  });
}

/**
 * Starts a usernameless sign-in for an interaction. The challenge row names
 * the interaction by its stored id (`storedIds`): the uid is the
 * `_interaction` cookie's value, a credential, and is not stored in clear.
 */
export async function startPasskeyAuthentication(db: Database, rp: RelyingParty, storedIds: StoredIds, interactionUid: string) {
  const options = await createAuthenticationOptions(rp);
  const challengeId = randomBytes(16).toString("base64url");
  await insertChallenge(db, {
    id: challengeId,
    challenge: options.challenge,
    purpose: "authentication",
    userId: null,
    interactionUid: storedIds.of(interactionUid),
    expiresAt: new Date(Date.now() + challengeTtlMs),
  });
  return { challengeId, options };
}

export type PasskeyCeremony =
  | { ok: true; user: UserRow; userVerified: boolean; passkeyId: string; deviceType: string }
  /** `user` when the credential named one: its failures count against that account. */
  | { ok: false; reason: string; user?: Pick<UserRow, "id" | "email"> };

/**
 * Verifies a passkey assertion for an interaction (WebAuthn Level 3, section
 * 7.2): the challenge is consumed whatever the outcome, the credential must be
 * registered, the user handle (when sent) must name its owner, the signature
 * must verify, and the counter must grow (compare-and-set, so a clone is
 * refused and logged). Only the ceremony: limits, audit and metrics of the
 * sign-in are signInWithPasskey's (services/sign-in.ts).
 */
export async function finishPasskeyAuthentication(
  db: Database,
  rp: RelyingParty,
  storedIds: StoredIds,
  interactionUid: string,
  input: { challengeId: string; response: AuthenticationResponseJSON },
  log: { warn(obj: object, msg: string): void },
): Promise<PasskeyCeremony> {
  const challenge = await transaction(db, (tx) => takeChallenge(tx, input.challengeId));
  if (!challenge || challenge.purpose !== "authentication" || !challenge.interactionUid || !storedIds.candidates(interactionUid).includes(challenge.interactionUid)) {
    return { ok: false, reason: "challenge_invalid" };
  }
  const credentialId = typeof input.response?.rawId === "string" ? Buffer.from(input.response.rawId, "base64url") : undefined;
  const passkey = credentialId?.length ? await findPasskeyByCredentialId(db, new Uint8Array(credentialId)) : null;
  if (!passkey) return { ok: false, reason: "unknown_credential" };
  const owner = await findUserById(db, passkey.userId);
  if (!owner) return { ok: false, reason: "unknown_user" };
  // The user handle, when sent, must name the passkey's owner. The route's
  // schema bounds it; the type check keeps Buffer.from to strings of any caller.
  const handle: unknown = input.response.response?.userHandle;
  if (handle !== undefined && (typeof handle !== "string" || handle.length > 128)) return { ok: false, reason: "user_handle_mismatch", user: owner };
  if (handle && Buffer.from(handle, "base64url").toString("utf8") !== passkey.userId) {
    return { ok: false, reason: "user_handle_mismatch", user: owner };
  }
  let result;
  try {
    result = await checkAuthentication(rp, input.response, challenge.challenge, {
      ...passkey,
      transports: JSON.parse(passkey.transports) as string[],
    });
  } catch (error) {
    const message = (error as Error).message;
    if (/counter/i.test(message)) {
      log.warn({ passkeyId: passkey.id, userId: passkey.userId, storedCounter: String(passkey.counter) }, "passkey counter went backwards: possible cloned authenticator, refused");
      return { ok: false, reason: "counter_not_increased", user: owner };
    }
    return { ok: false, reason: "verification_failed", user: owner };
  }
  if (owner.disabled) return { ok: false, reason: "disabled", user: owner };
  if (!(await updatePasskeyCounter(db, passkey.id, passkey.counter, result.newCounter))) return { ok: false, reason: "counter_not_increased", user: owner };
  return { ok: true, user: owner, userVerified: result.userVerified, passkeyId: passkey.id, deviceType: passkey.deviceType };
}

/**
 * Removes a passkey. With `ownerId` (a user removing their own), the passkey
 * must be theirs and may not be their last way to sign in; an operator
 * (no ownerId) may remove any passkey. With `config`, the owner is emailed a
 * notice in the same transaction (none when email is off).
 */
export async function removePasskey(
  db: Database,
  passkeyId: string,
  ownerId: string | undefined,
  actor: Pick<AuditInput, "actorType" | "actorId"> & Context,
  config?: Config,
): Promise<void> {
  await transaction(db, async (tx) => {
    // The owner's row first: two removals at once cannot both see the other passkey.
    if (ownerId !== undefined) await lockUser(tx, ownerId);
    const passkey = await findPasskeyOwner(tx, passkeyId);
    if (!passkey || (ownerId !== undefined && passkey.userId !== ownerId)) throw new AppError("not_found", "no such passkey");
    if (ownerId !== undefined && !(await userHasPassword(tx, ownerId)) && (await countPasskeysOfUser(tx, ownerId)) <= 1) {
      throw new AppError("conflict", "This is your only way to sign in: set a password or add another passkey first.");
    }
    await deletePasskey(tx, passkeyId);
    await appendAuditEvent(tx, db, {
      type: "passkey.removed",
      ...actor,
      userId: passkey.userId,
      data: { passkey_id: passkeyId, name: passkey.name },
    });
    const owner = config ? await findUserById(tx, passkey.userId) : null;
    if (owner) await queueAccountNotice({ db, config }, tx, owner, { kind: "passkey-removed", passkeyName: passkey.name });
  });
}
