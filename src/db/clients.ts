/** Queries on the Client table (OAuth clients, owned by the CLI and the admin API). */
import type { Database, Tx } from "./database.ts";
import { toBool, toJson } from "./sql.ts";

export interface ClientRow {
  id: string;
  name: string;
  secretEncrypted: string | null;
  metadata: unknown;
  firstParty: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export async function insertClient(
  tx: Tx,
  client: Pick<ClientRow, "id" | "name" | "secretEncrypted" | "firstParty"> & { metadata: object },
): Promise<ClientRow> {
  return tx.client.create({ data: client });
}

/** The columns oidc-provider needs of a client, by id (every token request may run it: db.sql). */
export async function findClientById(db: Database, id: string): Promise<Pick<ClientRow, "id" | "secretEncrypted" | "metadata" | "firstParty"> | null> {
  const [row] = await db.sql.query(`SELECT "id", "secretEncrypted", "metadata", "firstParty" FROM "Client" WHERE "id" = ?`, [id]);
  if (!row) return null;
  return {
    id: row.id as string,
    secretEncrypted: (row.secretEncrypted as string | null) ?? null,
    metadata: toJson(row.metadata),
    firstParty: toBool(row.firstParty),
  };
}

/** Every column of a client, by id. */
export async function findClientRow(tx: Tx, id: string): Promise<ClientRow | null> {
  return tx.client.findUnique({ where: { id } });
}

/** Clients in creation order (then id), after `after`. */
export async function listClientRows(tx: Tx, page: { after?: string; limit?: number } = {}): Promise<ClientRow[]> {
  return tx.client.findMany({
    where: page.after ? { id: { gt: page.after } } : {},
    orderBy: { id: "asc" },
    ...(page.limit && { take: page.limit }),
  });
}

export async function updateClientRow(
  tx: Tx,
  id: string,
  data: { name: string; metadata: object; firstParty: boolean },
): Promise<ClientRow> {
  return tx.client.update({ where: { id }, data });
}

export async function deleteClientRow(tx: Tx, id: string): Promise<void> {
  await tx.client.delete({ where: { id } });
}

/** A page of sealed client secrets, by client id (for `gatehouse keys reseal`). */
export async function pageSealedClientSecrets(tx: Tx, after: string | undefined, limit: number): Promise<{ id: string; sealed: string }[]> {
  const rows = await tx.client.findMany({
    where: { secretEncrypted: { not: null }, ...(after === undefined ? {} : { id: { gt: after } }) },
    select: { id: true, secretEncrypted: true },
    orderBy: { id: "asc" },
    take: limit,
  });
  return rows.map((r) => ({ id: r.id, sealed: r.secretEncrypted! }));
}

/** Replaces a sealed client secret only if it is still `from` (compare-and-set). */
export async function replaceSealedClientSecret(tx: Tx, id: string, from: string, to: string): Promise<boolean> {
  const { count } = await tx.client.updateMany({ where: { id, secretEncrypted: from }, data: { secretEncrypted: to } });
  return count === 1;
}
