/**
 * Revocation is a row delete (SPEC section 3): removing a grant's row and the
 * rows of every code and token issued under it revokes them at once on every
 * instance, since each request reads the database.
 */
import type { Database } from "../db/database.ts";
import { deleteGrantsAndTokens, deleteSessionsOfAccount } from "../db/revocations.ts";

export interface RevocationCount {
  grants: number;
  sessions: number;
}

/** Ends every session of a user and revokes every grant they gave (and its tokens). */
export async function revokeUserSessionsAndGrants(db: Database, userId: string): Promise<RevocationCount> {
  return db.prisma.$transaction(async (tx) => {
    const sessions = await deleteSessionsOfAccount(tx, userId);
    const grants = await deleteGrantsAndTokens(tx, { accountId: userId });
    return { grants, sessions };
  });
}
