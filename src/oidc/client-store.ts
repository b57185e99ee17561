/**
 * Reads clients from our own table for oidc-provider: the stored registration
 * metadata plus client_id and the client secret, unsealed with the master key.
 */
import type { PrismaClient } from "../db/database.ts";
import { findClientById } from "../db/clients.ts";
import { sealContext, type MasterKeyRing } from "../crypto/master-keys.ts";

export interface ClientStore {
  /** oidc-provider client metadata, or undefined for an unknown client. */
  findMetadata(clientId: string): Promise<Record<string, unknown> | undefined>;
}

/** What a client's sealed secret is bound to: its own row. */
export function clientSecretContext(clientId: string): string {
  return sealContext("Client", clientId, "client_secret");
}

export function createClientStore(prisma: PrismaClient, ring: MasterKeyRing): ClientStore {
  return {
    async findMetadata(clientId) {
      const row = await findClientById(prisma, clientId);
      if (!row) return undefined;
      const metadata: Record<string, unknown> = { ...(row.metadata as object), client_id: row.id, first_party: row.firstParty };
      if (row.secretEncrypted) metadata.client_secret = await ring.decrypt(row.secretEncrypted, clientSecretContext(row.id));
      return metadata;
    },
  };
}
