/** Reading oidc-provider Grant rows for operators. */
import type { Tx } from "./database.ts";

export interface GrantSummary {
  id: string;
  clientId: string | null;
  payload: string;
  createdAt: Date;
  expiresAt: Date | null;
}

export async function listGrantsOfAccount(tx: Tx, accountId: string, now = new Date()): Promise<GrantSummary[]> {
  return tx.oidcRecord.findMany({
    where: { model: "Grant", accountId, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
    select: { id: true, clientId: true, payload: true, createdAt: true, expiresAt: true },
    orderBy: { createdAt: "desc" },
  });
}
