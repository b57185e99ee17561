/** Queries on the User table. Emails are stored lower-cased (see prisma/models.prisma). */
import type { SqlRow } from "./database.ts";
import { toBool, toDate } from "./sql.ts";
import { clientOf, dialectOf, type Queryable, type Tx } from "./transaction.ts";

export interface UserRow {
  id: string;
  email: string;
  name: string | null;
  role: string;
  disabled: boolean;
  passwordHash: string | null;
  /** Whether the user proved they read mail at `email` (or an operator said so). */
  emailVerified: boolean;
  /** Signed up on /register (then signs in only once verified). */
  selfRegistered: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** What claims and pages show of a user: no password hash. */
export type UserProfile = Pick<UserRow, "id" | "email" | "name" | "role" | "disabled" | "emailVerified">;

const profileColumns = { id: true, email: true, name: true, role: true, disabled: true, emailVerified: true } as const;

export interface NewUser {
  id: string;
  email: string;
  name: string | null;
  role: string;
  passwordHash: string | null;
  emailVerified?: boolean;
  selfRegistered?: boolean;
}

/** Inserts a user; a taken email throws Prisma's P2002 (see isUniqueViolation). */
export async function insertUser(db: Queryable, user: NewUser): Promise<UserRow> {
  return clientOf(db).user.create({ data: user });
}

/** The whole row, password hash included: for callers that verify or report it. */
export async function findUserById(db: Queryable, id: string): Promise<UserRow | null> {
  return clientOf(db).user.findUnique({ where: { id } });
}

/** A user without the password hash: the claims lookup on every token and userinfo request. */
export async function findUserProfile(db: Queryable, id: string): Promise<UserProfile | null> {
  if ("sql" in db) {
    // oidc-provider's findAccount runs it on every token exchange, userinfo
    // and introspection request, outside any transaction: db.sql.
    const [row] = await db.sql.query(`SELECT "id", "email", "name", "role", "disabled", "emailVerified" FROM "User" WHERE "id" = ?`, [id]);
    return row ? profileOf(row) : null;
  }
  return clientOf(db).user.findUnique({ where: { id }, select: profileColumns });
}

export async function findUserByEmail(db: Queryable, email: string): Promise<UserRow | null> {
  if ("sql" in db) {
    // Every password sign-in runs it, outside a transaction: db.sql.
    const [row] = await db.sql.query(
      `SELECT "id", "email", "name", "role", "disabled", "passwordHash", "emailVerified", "selfRegistered", "createdAt", "updatedAt" FROM "User" WHERE "email" = ?`,
      [email.toLowerCase()],
    );
    return row ? userRowOf(row) : null;
  }
  return clientOf(db).user.findUnique({ where: { email: email.toLowerCase() } });
}

/** A row of db.sql as a UserProfile (the profile's columns). */
function profileOf(row: SqlRow): UserProfile {
  return {
    id: row.id as string,
    email: row.email as string,
    name: (row.name as string | null) ?? null,
    role: row.role as string,
    disabled: toBool(row.disabled),
    emailVerified: toBool(row.emailVerified),
  };
}

/** A row of db.sql as a whole UserRow (every column selected). */
function userRowOf(row: SqlRow): UserRow {
  return {
    ...profileOf(row),
    passwordHash: (row.passwordHash as string | null) ?? null,
    selfRegistered: toBool(row.selfRegistered),
    createdAt: toDate(row.createdAt)!,
    updatedAt: toDate(row.updatedAt)!,
  };
}

/** Whether the user has a password (false also for no such user). */
export async function userHasPassword(db: Queryable, id: string): Promise<boolean> {
  const row = await clientOf(db).user.findUnique({ where: { id }, select: { passwordHash: true } });
  return Boolean(row?.passwordHash);
}

/**
 * Locks the user's row until the transaction ends, so that a check of the
 * user's ways to sign in and the change it allows cannot interleave with
 * another transaction doing the same (two passkeys removed at once).
 * PostgreSQL: `SELECT ... FOR UPDATE`, which makes a second locker wait and
 * then, under READ COMMITTED, read what the first committed. SQLite: nothing
 * to do, transaction() holds the database's write lock already.
 */
export async function lockUser(tx: Tx, id: string): Promise<void> {
  if (dialectOf(tx) === "postgresql") await tx.$queryRaw`SELECT 1 FROM "User" WHERE "id" = ${id} FOR UPDATE`;
}

/** Users ordered by id, after `afterId`, optionally one email. */
export async function listUserRows(db: Queryable, filter: { email?: string; afterId?: string; limit: number }): Promise<UserRow[]> {
  return clientOf(db).user.findMany({
    where: { ...(filter.email && { email: filter.email }), ...(filter.afterId && { id: { gt: filter.afterId } }) },
    orderBy: { id: "asc" },
    take: filter.limit,
  });
}

export async function updateUserRow(
  db: Queryable,
  id: string,
  data: Partial<Pick<UserRow, "name" | "role" | "disabled" | "passwordHash" | "emailVerified">>,
): Promise<UserRow> {
  return clientOf(db).user.update({ where: { id }, data });
}

export async function deleteUserRow(db: Queryable, id: string): Promise<void> {
  await clientOf(db).user.delete({ where: { id } });
}
