/** Creating users and setting passwords: shared by the CLI and the admin API. */
import { randomUUID } from "node:crypto";
import type { Database } from "../db/database.ts";
import { findUserByEmail, insertUser, updateUserPasswordHash, type UserRow } from "../db/users.ts";
import { revokeUserSessionsAndGrants } from "./revocation.ts";
import { checkPasswordPolicy, hashPassword, type Argon2Params } from "../auth/passwords.ts";
import { AppError } from "../errors.ts";

export const roles = ["admin", "editor", "member"] as const;
export type Role = (typeof roles)[number];

export interface CreateUserInput {
  email: string;
  name?: string;
  role?: string;
  password?: string;
}

export interface UserView {
  id: string;
  email: string;
  name: string | null;
  role: string;
  disabled: boolean;
  created_at: string;
}

// Deliberately simple: one @, no spaces, a dot in the domain. Deliverability
// is proven by email verification, not by a regular expression.
const emailPattern = /^[^\s@"<>()\[\],;:\\]+@[^\s@"<>()\[\],;:\\]+\.[^\s@"<>()\[\],;:\\]+$/;

export function normalizeEmail(email: string): string {
  const value = email.trim().toLowerCase();
  if (value.length > 254 || !emailPattern.test(value)) throw new AppError("invalid_request", `invalid email address: ${JSON.stringify(email)}`);
  return value;
}

export function toUserView(row: UserRow): UserView {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    role: row.role,
    disabled: row.disabled,
    created_at: row.createdAt.toISOString(),
  };
}

/** Creates a user; 409 conflict when the email (case-insensitive) exists. */
export async function createUser(db: Database, argon2: Argon2Params, input: CreateUserInput): Promise<UserView> {
  const email = normalizeEmail(input.email);
  const name = input.name?.trim() || null;
  if (name && name.length > 200) throw new AppError("invalid_request", "name must be at most 200 characters");
  const role = input.role ?? "member";
  if (!(roles as readonly string[]).includes(role)) throw new AppError("invalid_request", `role must be one of ${roles.join(", ")}`);
  let passwordHash: string | null = null;
  if (input.password !== undefined) {
    const problem = checkPasswordPolicy(input.password);
    if (problem) throw new AppError("invalid_password", problem);
    passwordHash = await hashPassword(input.password, argon2);
  }
  const row = await insertUser(db.prisma, { id: randomUUID(), email, name, role, passwordHash });
  if (!row) throw new AppError("conflict", `a user with email ${email} already exists`);
  return toUserView(row);
}

/**
 * Sets a user's password and revokes their sessions and grants, so that
 * whoever knew the old password loses access at once (SPEC section 7).
 */
export async function setUserPassword(db: Database, argon2: Argon2Params, email: string, password: string): Promise<UserView> {
  const problem = checkPasswordPolicy(password);
  if (problem) throw new AppError("invalid_password", problem);
  const user = await findUserByEmail(db.prisma, normalizeEmail(email));
  if (!user) throw new AppError("not_found", `no user with email ${email}`);
  const passwordHash = await hashPassword(password, argon2);
  await updateUserPasswordHash(db.prisma, user.id, passwordHash);
  await revokeUserSessionsAndGrants(db, user.id);
  return toUserView(user);
}
