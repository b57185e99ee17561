/**
 * Users: one place for the rules, called by the CLI and the admin API
 * (README, "The gatehouse command" and "Admin API"). Every change is audited in its own transaction;
 * disabling, deleting or setting a password revokes the user's sessions and
 * grants in that same transaction.
 */
import { randomUUID } from "node:crypto";
import { transaction, type Database } from "../db/transaction.ts";
import { isUniqueViolation } from "../db/errors.ts";
import { deleteUserRow, findUserByEmail, findUserById, insertUser, listUserRows, updateUserRow, type UserRow } from "../db/users.ts";
import { checkPasswordPolicy, hashPassword, type Argon2Params } from "../auth/passwords.ts";
import { appendAuditEvent } from "./audit.ts";
import { revokeUserAccess } from "./revocation.ts";
import { systemActor, type Actor } from "./actor.ts";
import { AppError } from "../errors.ts";
import type { Config } from "../config.ts";
import { queueAccountNotice } from "../email/notices.ts";
import { supersedeEmailLinks } from "../db/email-links.ts";

export const roles = ["admin", "editor", "member"] as const;
export type Role = (typeof roles)[number];

export interface CreateUserInput {
  email: string;
  name?: string;
  role?: string;
  password?: string;
  /** An operator vouches for the address (the email_verified claim is true from the start). */
  emailVerified?: boolean;
}

export interface UpdateUserInput {
  name?: string | null;
  role?: string;
  disabled?: boolean;
}

export interface UserView {
  id: string;
  email: string;
  name: string | null;
  role: string;
  disabled: boolean;
  has_password: boolean;
  email_verified: boolean;
  created_at: string;
  updated_at: string;
}

// Deliberately simple: one @, no spaces, a dot in the domain. Deliverability
// is proven by email verification, not by a regular expression.
const emailPattern = /^[^\s@"<>()\[\],;:\\]+@[^\s@"<>()\[\],;:\\]+\.[^\s@"<>()\[\],;:\\]+$/;

export function normalizeEmail(email: string): string {
  const value = email.trim().toLowerCase();
  if (value.length > 254 || !emailPattern.test(value)) throw new AppError("invalid_request", `invalid email address: ${JSON.stringify(email)}`);
  return value;
}

function checkName(name: string | null | undefined): string | null {
  const value = name?.trim() || null;
  if (value && (value.length > 200 || /[\u0000-\u001f\u007f]/.test(value))) {
    throw new AppError("invalid_request", "name must be at most 200 characters, without control characters");
  }
  return value;
}

function checkRole(role: string): string {
  if (!(roles as readonly string[]).includes(role)) throw new AppError("invalid_request", `role must be one of ${roles.join(", ")}`);
  return role;
}

async function checkedHash(password: string, argon2: Argon2Params): Promise<string> {
  const problem = checkPasswordPolicy(password);
  if (problem) throw new AppError("invalid_password", problem);
  return hashPassword(password, argon2);
}

export function toUserView(row: UserRow): UserView {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    role: row.role,
    disabled: row.disabled,
    has_password: row.passwordHash !== null,
    email_verified: row.emailVerified,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

async function requireUser(db: Database, id: string): Promise<UserRow> {
  const user = await findUserById(db, id);
  if (!user) throw new AppError("not_found", "no such user");
  return user;
}

/** Creates a user; conflict when the email (case-insensitive) exists. */
export async function createUser(db: Database, argon2: Argon2Params, input: CreateUserInput, actor: Actor = systemActor): Promise<UserView> {
  const email = normalizeEmail(input.email);
  const name = checkName(input.name);
  const role = checkRole(input.role ?? "member");
  const passwordHash = input.password === undefined ? null : await checkedHash(input.password, argon2);
  try {
    const row = await transaction(db, async (tx) => {
      const user = await insertUser(tx, { id: randomUUID(), email, name, role, passwordHash, emailVerified: input.emailVerified === true });
      await appendAuditEvent(tx, db, {
        type: "user.created",
        ...actor,
        userId: user.id,
        data: { email, role, with_password: passwordHash !== null, email_verified: input.emailVerified === true },
      });
      return user;
    });
    return toUserView(row);
  } catch (error) {
    if (isUniqueViolation(error)) throw new AppError("conflict", `a user with email ${email} already exists`);
    throw error;
  }
}

export async function getUser(db: Database, id: string): Promise<UserView> {
  return toUserView(await requireUser(db, id));
}

/** Users in id order, a page at a time; `email` finds one user. */
export async function listUsers(db: Database, query: { email?: string; after?: string; limit: number }): Promise<UserView[]> {
  const email = query.email === undefined ? undefined : query.email.trim().toLowerCase();
  return (await listUserRows(db, { email, afterId: query.after, limit: query.limit })).map(toUserView);
}

/** Changes name, role or disabled; disabling revokes sessions and grants. */
export async function updateUser(db: Database, id: string, input: UpdateUserInput, actor: Actor): Promise<UserView> {
  const data: Partial<Pick<UserRow, "name" | "role" | "disabled">> = {};
  if (input.name !== undefined) data.name = checkName(input.name);
  if (input.role !== undefined) data.role = checkRole(input.role);
  if (input.disabled !== undefined) data.disabled = input.disabled;
  const before = await requireUser(db, id);
  const row = await transaction(db, async (tx) => {
    const user = await updateUserRow(tx, id, data);
    const revoked = data.disabled === true ? await revokeUserAccess(tx, id) : undefined;
    await appendAuditEvent(tx, db, {
      type: data.disabled === true && !before.disabled ? "user.disabled" : "user.updated",
      ...actor,
      userId: id,
      data: { changes: data, ...(revoked && { revoked }) },
    });
    return user;
  });
  return toUserView(row);
}

/** Deletes a user, their passkeys (cascade), sessions and grants. */
export async function deleteUser(db: Database, id: string, actor: Actor): Promise<void> {
  const user = await requireUser(db, id);
  await transaction(db, async (tx) => {
    const revoked = await revokeUserAccess(tx, id);
    await deleteUserRow(tx, id);
    await appendAuditEvent(tx, db, { type: "user.deleted", ...actor, userId: id, data: { email: user.email, revoked } });
  });
}

/**
 * Sets a user's password and revokes their sessions and grants, so that
 * whoever knew the old password loses access at once (README, "The gatehouse command" and "Admin API").
 * With `config`, the user is emailed a notice in the same transaction (none when email is off).
 */
export async function setUserPassword(db: Database, argon2: Argon2Params, id: string, password: string, actor: Actor, config?: Config): Promise<UserView> {
  const passwordHash = await checkedHash(password, argon2);
  await requireUser(db, id);
  const row = await transaction(db, async (tx) => {
    const user = await updateUserRow(tx, id, { passwordHash });
    await supersedeEmailLinks(tx, id);
    const revoked = await revokeUserAccess(tx, id);
    await appendAuditEvent(tx, db, { type: "password.changed", ...actor, userId: id, data: { revoked } });
    await queueAccountNotice({ db, config }, tx, user, { kind: "password-changed" });
    return user;
  });
  return toUserView(row);
}

/** The CLI's form: the user named by email. */
export async function setUserPasswordByEmail(db: Database, argon2: Argon2Params, email: string, password: string, actor: Actor, config?: Config): Promise<UserView> {
  const user = await findUserByEmail(db, normalizeEmail(email));
  if (!user) throw new AppError("not_found", `no user with email ${email}`);
  return setUserPassword(db, argon2, user.id, password, actor, config);
}
