/**
 * The Prisma-backed oidc-provider adapter: every model (Session, Grant,
 * AccessToken, AuthorizationCode, RefreshToken, ClientCredentials, Interaction,
 * ReplayDetection, PushedAuthorizationRequest, ...) is a row of OidcRecord;
 * Client is read from our own clients table (see client-store.ts).
 * Contract: https://github.com/panva/node-oidc-provider/blob/main/example/my_adapter.js
 */
import type { Adapter, AdapterPayload } from "oidc-provider";
import type { PrismaClient } from "../db/database.ts";
import {
  consumeOidcRecord,
  deleteOidcRecord,
  deleteOidcRecordsByGrant,
  findOidcRecord,
  findOidcRecordByUid,
  findOidcRecordByUserCode,
  upsertOidcRecord,
} from "../db/oidc-records.ts";
import type { ClientStore } from "./client-store.ts";

class PrismaOidcAdapter implements Adapter {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly model: string,
    /** For RefreshToken: how long a rotated-out token still reads as unconsumed. */
    private readonly consumedGraceMs = 0,
  ) {}

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    // No expiresIn means "no expiry"; a lifetime of 0 or less is already over.
    const expiresAt = typeof expiresIn === "number" ? new Date(Date.now() + expiresIn * 1000) : null;
    await upsertOidcRecord(this.prisma, { model: this.model, id, payload: payload as Record<string, unknown>, expiresAt });
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return (await findOidcRecord(this.prisma, this.model, id, this.consumedGraceMs)) as AdapterPayload | undefined;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return (await findOidcRecordByUid(this.prisma, this.model, uid)) as AdapterPayload | undefined;
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return (await findOidcRecordByUserCode(this.prisma, this.model, userCode)) as AdapterPayload | undefined;
  }

  async consume(id: string): Promise<void> {
    await consumeOidcRecord(this.prisma, this.model, id);
  }

  async destroy(id: string): Promise<void> {
    await deleteOidcRecord(this.prisma, this.model, id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    // oidc-provider calls this once per model; each call deletes its own rows.
    await deleteOidcRecordsByGrant(this.prisma, this.model, grantId);
  }
}

/** Read-only adapter for the Client model, backed by the clients table. */
class ClientAdapter implements Adapter {
  constructor(private readonly clients: ClientStore) {}

  async find(id: string): Promise<AdapterPayload | undefined> {
    return (await this.clients.findMetadata(id)) as AdapterPayload | undefined;
  }

  async upsert(): Promise<void> {
    throw new Error("clients are managed through the CLI and the admin API");
  }

  async destroy(): Promise<void> {
    throw new Error("clients are managed through the CLI and the admin API");
  }

  async findByUid(): Promise<undefined> {
    return undefined;
  }

  async findByUserCode(): Promise<undefined> {
    return undefined;
  }

  async consume(): Promise<void> {}

  async revokeByGrantId(): Promise<void> {}
}

/**
 * The `adapter` factory handed to oidc-provider's configuration.
 * `refreshReuseGraceSeconds` (REFRESH_REUSE_GRACE, SPEC section 5): within
 * that time after a refresh token was rotated out, presenting it again rotates
 * again instead of counting as reuse, so a client that lost the response to a
 * refresh can retry without losing its grant.
 */
export function createAdapterFactory(prisma: PrismaClient, clients: ClientStore, refreshReuseGraceSeconds = 0): (model: string) => Adapter {
  return (model) => {
    if (model === "Client") return new ClientAdapter(clients);
    return new PrismaOidcAdapter(prisma, model, model === "RefreshToken" ? refreshReuseGraceSeconds * 1000 : 0);
  };
}
