/** Queries on UserTotp and RecoveryCode (two-step verification). */
import { clientOf, type Queryable, type Tx } from "./transaction.ts";

export interface TotpRow {
  userId: string;
  secretSealed: string;
  confirmedAt: Date | null;
  lastUsedStep: number | null;
}

const totpFields = { userId: true, secretSealed: true, confirmedAt: true, lastUsedStep: true } as const;

export async function findTotp(db: Queryable, userId: string): Promise<TotpRow | null> {
  return clientOf(db).userTotp.findUnique({ where: { userId }, select: totpFields });
}

/** Whether the user has a confirmed (turned on) authenticator app. */
export async function hasConfirmedTotp(db: Queryable, userId: string): Promise<boolean> {
  return (await clientOf(db).userTotp.count({ where: { userId, confirmedAt: { not: null } } })) === 1;
}

/** Stores a new, unconfirmed secret, replacing an unconfirmed one; never a confirmed one. */
export async function upsertPendingTotp(tx: Tx, userId: string, secretSealed: string): Promise<boolean> {
  const existing = await tx.userTotp.findUnique({ where: { userId }, select: { confirmedAt: true } });
  if (existing?.confirmedAt) return false;
  if (existing) await tx.userTotp.update({ where: { userId }, data: { secretSealed, lastUsedStep: null, createdAt: new Date() } });
  else await tx.userTotp.create({ data: { userId, secretSealed } });
  return true;
}

/** Turns the secret on with its first accepted step, if it is still unconfirmed and still `secretSealed`. */
export async function confirmTotp(db: Queryable, userId: string, secretSealed: string, step: number): Promise<boolean> {
  const { count } = await clientOf(db).userTotp.updateMany({
    where: { userId, secretSealed, confirmedAt: null },
    data: { confirmedAt: new Date(), lastUsedStep: step },
  });
  return count === 1;
}

/**
 * Records `step` as used only if it is later than the last used step
 * (compare-and-set in one UPDATE): of two parallel submissions of one code,
 * exactly one succeeds, and an earlier code is never accepted after a later one.
 */
export async function advanceTotpStep(db: Queryable, userId: string, step: number): Promise<boolean> {
  const { count } = await clientOf(db).userTotp.updateMany({
    where: { userId, confirmedAt: { not: null }, OR: [{ lastUsedStep: null }, { lastUsedStep: { lt: step } }] },
    data: { lastUsedStep: step },
  });
  return count === 1;
}

export async function deleteTotp(db: Queryable, userId: string): Promise<boolean> {
  const { count } = await clientOf(db).userTotp.deleteMany({ where: { userId } });
  return count === 1;
}

export async function replaceRecoveryCodes(tx: Tx, userId: string, rows: { id: string; codeHash: string }[]): Promise<void> {
  await tx.recoveryCode.deleteMany({ where: { userId } });
  await tx.recoveryCode.createMany({ data: rows.map((row) => ({ ...row, userId })) });
}

export async function deleteRecoveryCodes(db: Queryable, userId: string): Promise<number> {
  const { count } = await clientOf(db).recoveryCode.deleteMany({ where: { userId } });
  return count;
}

export async function countUnusedRecoveryCodes(db: Queryable, userId: string): Promise<number> {
  return clientOf(db).recoveryCode.count({ where: { userId, usedAt: null } });
}

/** Marks the user's unused code with this hash as used (compare-and-set): true once per code. */
export async function useRecoveryCode(db: Queryable, userId: string, codeHash: string): Promise<boolean> {
  const { count } = await clientOf(db).recoveryCode.updateMany({ where: { userId, codeHash, usedAt: null }, data: { usedAt: new Date() } });
  return count === 1;
}

/** Sealed secrets by user id after `after`, for `gatehouse keys reseal` (services/reseal.ts). */
export async function pageSealedTotpSecrets(db: Queryable, after: string | undefined, limit: number): Promise<{ id: string; sealed: string }[]> {
  const rows = await clientOf(db).userTotp.findMany({
    where: after === undefined ? {} : { userId: { gt: after } },
    orderBy: { userId: "asc" },
    take: limit,
    select: { userId: true, secretSealed: true },
  });
  return rows.map((row) => ({ id: row.userId, sealed: row.secretSealed }));
}

export async function replaceSealedTotpSecret(db: Queryable, userId: string, from: string, to: string): Promise<boolean> {
  const { count } = await clientOf(db).userTotp.updateMany({ where: { userId, secretSealed: from }, data: { secretSealed: to } });
  return count === 1;
}
