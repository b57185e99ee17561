/** Deletes that revoke: sessions and grants with everything issued under them. */
import { clientOf, type Queryable, type Tx } from "./transaction.ts";

export async function deleteSessionsOfAccount(db: Queryable, accountId: string): Promise<number> {
  return deleteSessionsWhere(db, { accountId });
}

export async function deleteSessionsWhere(db: Queryable, filter: { id?: string; accountId?: string; issuedBefore?: Date }): Promise<number> {
  const { count } = await clientOf(db).oidcRecord.deleteMany({
    where: {
      model: "Session",
      ...(filter.id && { id: filter.id }),
      ...(filter.accountId && { accountId: filter.accountId }),
      ...(filter.issuedBefore && { createdAt: { lt: filter.issuedBefore } }),
    },
  });
  return count;
}

/**
 * Deletes the matching Grant rows and every row carrying their grantId: three
 * statements, so only inside a transaction. A token written under one of
 * these grants after its rows were deleted outlives the grant's row and is
 * refused anyway: oidc-provider looks up a token's grant at introspection,
 * userinfo and the token endpoint, and refuses a token whose grant is gone.
 */
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

/** Deletes the tokens a client holds for itself (client_credentials), which belong to no grant. */
export async function deleteClientCredentialsTokens(db: Queryable, filter: { clientId: string; issuedBefore?: Date }): Promise<number> {
  const { count } = await clientOf(db).oidcRecord.deleteMany({
    where: { model: "ClientCredentials", clientId: filter.clientId, ...(filter.issuedBefore && { createdAt: { lt: filter.issuedBefore } }) },
  });
  return count;
}

/** Deletes every code and token issued to a client, under a grant or not (the client is being deleted). */
export async function deleteTokensOfClient(db: Queryable, clientId: string): Promise<number> {
  const { count } = await clientOf(db).oidcRecord.deleteMany({
    where: { clientId, model: { in: ["ClientCredentials", "AccessToken", "RefreshToken", "AuthorizationCode"] } },
  });
  return count;
}
