/** Queries on the Client table (OAuth clients, owned by the CLI and the admin API). */
import type { PrismaClient } from "./database.ts";

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
  prisma: PrismaClient,
  client: Pick<ClientRow, "id" | "name" | "secretEncrypted" | "firstParty"> & { metadata: object },
): Promise<ClientRow> {
  return prisma.client.create({ data: client });
}

export async function findClientById(prisma: PrismaClient, id: string): Promise<ClientRow | null> {
  return prisma.client.findUnique({ where: { id } });
}

export async function listClientRows(prisma: PrismaClient): Promise<ClientRow[]> {
  return prisma.client.findMany({ orderBy: { createdAt: "asc" } });
}
