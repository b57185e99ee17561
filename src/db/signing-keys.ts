/** Queries on the SigningKey table. */
import type { PrismaClient } from "./database.ts";

export type KeyState = "next" | "current" | "retired";

export interface SigningKeyRow {
  kid: string;
  alg: string;
  state: string;
  publicJwk: unknown;
  privateJwkEncrypted: string;
  createdAt: Date;
  activatedAt: Date | null;
  retiredAt: Date | null;
}

export async function listSigningKeyRows(prisma: PrismaClient): Promise<SigningKeyRow[]> {
  return prisma.signingKey.findMany({ orderBy: [{ createdAt: "desc" }, { kid: "asc" }] });
}

/**
 * Inserts the given keys unless a current key of their algorithm already
 * exists, atomically: several instances starting on an empty database end up
 * with one key set. Returns the kids inserted.
 */
export async function insertMissingCurrentKeys(
  prisma: PrismaClient,
  provider: "sqlite" | "postgresql",
  keys: Omit<SigningKeyRow, "createdAt" | "retiredAt">[],
): Promise<string[]> {
  return prisma.$transaction(async (tx) => {
    if (provider === "postgresql") {
      // Serialises concurrent first starts; released at commit.
      await tx.$executeRawUnsafe("SELECT pg_advisory_xact_lock(7246118342)");
    }
    const existing = await tx.signingKey.findMany({ where: { state: "current" }, select: { alg: true } });
    const have = new Set(existing.map((k) => k.alg));
    const missing = keys.filter((k) => !have.has(k.alg));
    for (const key of missing) await tx.signingKey.create({ data: { ...key, publicJwk: key.publicJwk as object } });
    return missing.map((k) => k.kid);
  });
}
