/** Queries on the User table. Emails are stored lower-cased (see prisma/models.prisma). */
import type { Database, Tx } from "./database.ts";
import { toBool } from "./sql.ts";

export interface UserRow {
  id: string;
  email: string;
  name: string | null;
  role: string;
  disabled: boolean;
  passwordHash: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewUser {
  id: string;
  email: string;
  name: string | null;
  role: string;
  passwordHash: string | null;
}

/** Inserts a user; a taken email throws Prisma's P2002 (see isUniqueViolation). */
export async function insertUser(tx: Tx, user: NewUser): Promise<UserRow> {
  return tx.user.create({ data: user });
}

export async function findUserById(tx: Tx, id: string): Promise<UserRow | null> {
  return tx.user.findUnique({ where: { id } });
}

export async function findUserByEmail(tx: Tx, email: string): Promise<UserRow | null> {
  return tx.user.findUnique({ where: { email: email.toLowerCase() } });
}

/** Users ordered by id, after `afterId`, optionally one email. */
export async function listUserRows(tx: Tx, filter: { email?: string; afterId?: string; limit: number }): Promise<UserRow[]> {
  return tx.user.findMany({
    where: { ...(filter.email && { email: filter.email }), ...(filter.afterId && { id: { gt: filter.afterId } }) },
    orderBy: { id: "asc" },
    take: filter.limit,
  });
}

export async function updateUserRow(
  tx: Tx,
  id: string,
  data: Partial<Pick<UserRow, "name" | "role" | "disabled" | "passwordHash">>,
): Promise<UserRow> {
  return tx.user.update({ where: { id }, data });
}

export async function deleteUserRow(tx: Tx, id: string): Promise<void> {
  await tx.user.delete({ where: { id } });
}

/** What ID tokens, userinfo and introspection need of a user (SQL: every token request runs it). */
export interface AccountClaimsRow {
  id: string;
  email: string;
  name: string | null;
  role: string;
  disabled: boolean;
}

export async function findAccountClaims(db: Database, id: string): Promise<AccountClaimsRow | null> {
  const [row] = await db.sql.query(`SELECT "id", "email", "name", "role", "disabled" FROM "User" WHERE "id" = ?`, [id]);
  if (!row) return null;
  return { id: row.id as string, email: row.email as string, name: (row.name as string | null) ?? null, role: row.role as string, disabled: toBool(row.disabled) };
}
