/** Queries on the Client table (OAuth clients, owned by the CLI and the admin API). */
import type { Database } from "./database.ts";
import { clientOf, type Queryable } from "./transaction.ts";
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
  db: Queryable,
  client: Pick<ClientRow, "id" | "name" | "secretEncrypted" | "firstParty"> & { metadata: object },
): Promise<ClientRow> {
  return clientOf(db).client.create({ data: client });
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
export async function findClientRow(db: Queryable, id: string): Promise<ClientRow | null> {
  return clientOf(db).client.findUnique({ where: { id } });
}

/** Clients in creation order (then id), after `after`. */
export async function listClientRows(db: Queryable, page: { after?: string; limit?: number } = {}): Promise<ClientRow[]> {
  return clientOf(db).client.findMany({
    where: page.after ? { id: { gt: page.after } } : {},
    orderBy: { id: "asc" },
    ...(page.limit && { take: page.limit }),
  });
}

export async function updateClientRow(
  db: Queryable,
  id: string,
  data: { name: string; metadata: object; firstParty: boolean },
): Promise<ClientRow> {
  return clientOf(db).client.update({ where: { id }, data });
}

export async function deleteClientRow(db: Queryable, id: string): Promise<void> {
  await clientOf(db).client.delete({ where: { id } });
}

/** A page of sealed client secrets, by client id (for `gatehouse keys reseal`). */
export async function pageSealedClientSecrets(db: Queryable, after: string | undefined, limit: number): Promise<{ id: string; sealed: string }[]> {
  const rows = await clientOf(db).client.findMany({
    where: { secretEncrypted: { not: null }, ...(after === undefined ? {} : { id: { gt: after } }) },
    select: { id: true, secretEncrypted: true },
    orderBy: { id: "asc" },
    take: limit,
  });
  return rows.map((r) => ({ id: r.id, sealed: r.secretEncrypted! }));
}

/** Replaces a sealed client secret only if it is still `from` (compare-and-set). */
export async function replaceSealedClientSecret(db: Queryable, id: string, from: string, to: string): Promise<boolean> {
  const { count } = await clientOf(db).client.updateMany({ where: { id, secretEncrypted: from }, data: { secretEncrypted: to } });
  return count === 1;
}
