/** Queries on the User table. Emails are stored lower-cased (see prisma/models.prisma). */
import type { Tx } from "./database.ts";

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
