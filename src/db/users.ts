/** Queries on the User table. Emails are stored lower-cased (see prisma/models.prisma). */
import type { PrismaClient } from "./database.ts";
import { isUniqueViolation } from "./errors.ts";

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

/** Inserts a user; returns undefined when the email is taken. */
export async function insertUser(prisma: PrismaClient, user: NewUser): Promise<UserRow | undefined> {
  try {
    return await prisma.user.create({ data: user });
  } catch (error) {
    if (isUniqueViolation(error)) return undefined;
    throw error;
  }
}

export async function findUserById(prisma: PrismaClient, id: string): Promise<UserRow | null> {
  return prisma.user.findUnique({ where: { id } });
}

export async function findUserByEmail(prisma: PrismaClient, email: string): Promise<UserRow | null> {
  return prisma.user.findUnique({ where: { email: email.toLowerCase() } });
}

export async function updateUserPasswordHash(prisma: PrismaClient, id: string, passwordHash: string): Promise<void> {
  await prisma.user.update({ where: { id }, data: { passwordHash } });
}
