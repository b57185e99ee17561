/**
 * Queries on ResourceServer (the APIs that accept Gatehouse access tokens)
 * and the deletes that revoke what was issued for one of them.
 */
import type { Database } from "./database.ts";
import { clientOf, type Queryable, type Tx } from "./transaction.ts";
import { toDate, toJson } from "./sql.ts";

export interface ResourceServerScope {
  name: string;
  description: string;
}

export interface ResourceServerRow {
  id: string;
  identifier: string;
  name: string;
  scopes: ResourceServerScope[];
  tokenFormat: string;
  signingAlg: string;
  accessTokenTtl: number;
  introspectionClients: string[];
  createdAt: Date;
  updatedAt: Date;
}

export type ResourceServerData = Omit<ResourceServerRow, "id" | "createdAt" | "updatedAt">;

function rowOf(row: Record<string, unknown>): ResourceServerRow {
  return {
    id: row.id as string,
    identifier: row.identifier as string,
    name: row.name as string,
    scopes: toJson(row.scopes) as ResourceServerScope[],
    tokenFormat: row.tokenFormat as string,
    signingAlg: row.signingAlg as string,
    accessTokenTtl: Number(row.accessTokenTtl),
    introspectionClients: toJson(row.introspectionClients) as string[],
    createdAt: toDate(row.createdAt)!,
    updatedAt: toDate(row.updatedAt)!,
  };
}

/**
 * Every resource server, for the token, authorization and introspection
 * endpoints (db.sql: one statement, no query builder; the table is small:
 * one row per API).
 */
export async function listAllResourceServers(db: Database): Promise<ResourceServerRow[]> {
  const rows = await db.sql.query(
    `SELECT "id", "identifier", "name", "scopes", "tokenFormat", "signingAlg", "accessTokenTtl", "introspectionClients", "createdAt", "updatedAt"
     FROM "ResourceServer" ORDER BY "identifier"`,
    [],
  );
  return rows.map(rowOf);
}

export async function insertResourceServer(tx: Tx, row: ResourceServerData & { id: string }): Promise<ResourceServerRow> {
  return rowOf(await tx.resourceServer.create({ data: row as never }));
}

export async function findResourceServerRow(db: Queryable, id: string): Promise<ResourceServerRow | null> {
  const row = await clientOf(db).resourceServer.findUnique({ where: { id } });
  return row && rowOf(row);
}

export async function findResourceServerByIdentifier(db: Queryable, identifier: string): Promise<ResourceServerRow | null> {
  const row = await clientOf(db).resourceServer.findUnique({ where: { identifier } });
  return row && rowOf(row);
}

/** Resource servers by id, after `after`. */
export async function listResourceServerRows(db: Queryable, page: { after?: string; limit?: number } = {}): Promise<ResourceServerRow[]> {
  const rows = await clientOf(db).resourceServer.findMany({
    where: page.after ? { id: { gt: page.after } } : {},
    orderBy: { id: "asc" },
    ...(page.limit && { take: page.limit }),
  });
  return rows.map(rowOf);
}

/** Every resource server inside a transaction (scope names are checked against all of them). */
export async function listResourceServersIn(tx: Tx): Promise<ResourceServerRow[]> {
  return (await tx.resourceServer.findMany({ orderBy: { id: "asc" } })).map(rowOf);
}

export async function updateResourceServerRow(tx: Tx, id: string, data: Partial<ResourceServerData>): Promise<ResourceServerRow> {
  return rowOf(await tx.resourceServer.update({ where: { id }, data: data as never }));
}

export async function deleteResourceServerRow(tx: Tx, id: string): Promise<void> {
  await tx.resourceServer.delete({ where: { id } });
}

/** Token models whose rows carry an audience (`aud`) in their payload. */
const audiencedModels = ["AccessToken", "ClientCredentials"];

/**
 * Deletes what was issued for the resource `identifier`: every Grant that
 * holds scopes for it (oidc-provider's Grant payload `resources`), with every
 * row issued under those grants (codes, access and refresh tokens), and every
 * access token whose audience it is (client_credentials tokens belong to no
 * grant). Payloads are JSON text: rows that mention the identifier are read
 * and the JSON decides, so an identifier that is a prefix of another, or
 * LIKE's wildcards in it, never select the wrong rows. Inside a transaction.
 */
export async function deleteGrantsAndTokensForResource(tx: Tx, identifier: string): Promise<{ grants: number; tokens: number }> {
  const candidates = await tx.oidcRecord.findMany({
    where: { model: { in: ["Grant", ...audiencedModels] }, payload: { contains: identifier } },
    select: { model: true, id: true, payload: true },
  });
  const grantIds: string[] = [];
  const tokens: { model: string; id: string }[] = [];
  for (const row of candidates) {
    let payload: Record<string, unknown>;
    try {
      payload = JSON.parse(row.payload) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (row.model === "Grant") {
      const resources = payload.resources as Record<string, unknown> | undefined;
      if (resources && Object.hasOwn(resources, identifier)) grantIds.push(row.id);
    } else if (payload.aud === identifier || (Array.isArray(payload.aud) && payload.aud.includes(identifier))) {
      tokens.push({ model: row.model, id: row.id });
    }
  }
  if (grantIds.length) {
    await tx.oidcRecord.deleteMany({ where: { grantId: { in: grantIds } } });
    await tx.oidcRecord.deleteMany({ where: { model: "Grant", id: { in: grantIds } } });
  }
  for (const model of audiencedModels) {
    const ids = tokens.filter((t) => t.model === model).map((t) => t.id);
    if (ids.length) await tx.oidcRecord.deleteMany({ where: { model, id: { in: ids } } });
  }
  return { grants: grantIds.length, tokens: tokens.length };
}
