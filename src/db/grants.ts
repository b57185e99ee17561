/** Reading oidc-provider Grant rows for operators. */
import { clientOf, type Queryable } from "./transaction.ts";

export interface GrantSummary {
  id: string;
  clientId: string | null;
  payload: string;
  createdAt: Date;
  expiresAt: Date | null;
}

export async function listGrantsOfAccount(db: Queryable, accountId: string, now = new Date()): Promise<GrantSummary[]> {
  return clientOf(db).oidcRecord.findMany({
    where: { model: "Grant", accountId, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
    select: { id: true, clientId: true, payload: true, createdAt: true, expiresAt: true },
    orderBy: { createdAt: "desc" },
  });
}

/** The account and client of a grant, or null when there is no such grant. */
export async function findGrantParties(db: Queryable, id: string): Promise<{ accountId: string | null; clientId: string | null } | null> {
  return clientOf(db).oidcRecord.findUnique({ where: { model_id: { model: "Grant", id } }, select: { accountId: true, clientId: true } });
}
