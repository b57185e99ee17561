/** Deletes that revoke: sessions and grants with everything issued under them. */
import type { Tx } from "./database.ts";

export async function deleteSessionsOfAccount(tx: Tx, accountId: string): Promise<number> {
  return deleteSessionsWhere(tx, { accountId });
}

export async function deleteSessionsWhere(tx: Tx, filter: { id?: string; accountId?: string; issuedBefore?: Date }): Promise<number> {
  const { count } = await tx.oidcRecord.deleteMany({
    where: {
      model: "Session",
      ...(filter.id && { id: filter.id }),
      ...(filter.accountId && { accountId: filter.accountId }),
      ...(filter.issuedBefore && { createdAt: { lt: filter.issuedBefore } }),
    },
  });
  return count;
}

/** Deletes the matching Grant rows and every row carrying their grantId. */
export async function deleteGrantsAndTokens(
  tx: Tx,
  filter: { accountId?: string; clientId?: string; grantId?: string; issuedBefore?: Date; exceptGrantIds?: readonly string[] },
): Promise<number> {
  const grants = await tx.oidcRecord.findMany({
    where: {
      model: "Grant",
      ...(filter.grantId && { id: filter.grantId }),
      ...(filter.exceptGrantIds?.length && { id: { notIn: [...filter.exceptGrantIds] } }),
      ...(filter.accountId && { accountId: filter.accountId }),
      ...(filter.clientId && { clientId: filter.clientId }),
      ...(filter.issuedBefore && { createdAt: { lt: filter.issuedBefore } }),
    },
    select: { id: true },
  });
  if (grants.length === 0) return 0;
  const ids = grants.map((g) => g.id);
  await tx.oidcRecord.deleteMany({ where: { grantId: { in: ids } } });
  await tx.oidcRecord.deleteMany({ where: { model: "Grant", id: { in: ids } } });
  return ids.length;
}
