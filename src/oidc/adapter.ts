/**
 * The Prisma-backed oidc-provider adapter: every model (Session, Grant,
 * AccessToken, AuthorizationCode, RefreshToken, ClientCredentials, Interaction,
 * ReplayDetection, PushedAuthorizationRequest, ...) is a row of OidcRecord;
 * Client is read from our own clients table (see client-store.ts).
 * Contract: https://github.com/panva/node-oidc-provider/blob/main/example/my_adapter.js
 */
import { errors, type Adapter, type AdapterPayload } from "oidc-provider";
import type { PrismaClient } from "../db/database.ts";
import {
  consumeOidcRecord,
  deleteOidcGrant,
  deleteOidcRecord,
  deleteOidcRecordsByGrant,
  findOidcRecord,
  findOidcRecordByUid,
  findOidcRecordByUserCode,
  upsertOidcRecord,
} from "../db/oidc-records.ts";
import type { ClientStore } from "./client-store.ts";

/**
 * What oidc-provider calls each single-use model in its reuse errors
 * (lib/helpers/grant_source.js, lib/actions/grants/refresh_token.js), so a
 * redemption that loses a race fails exactly like a sequential reuse.
 */
const reuseErrors: Record<string, { reused: () => Error; gone: () => Error }> = {
  RefreshToken: grantError("refresh token", "already used"),
  AuthorizationCode: grantError("authorization code", "already consumed"),
  DeviceCode: grantError("device code", "already consumed"),
  BackchannelAuthenticationRequest: grantError("backchannel authentication request", "already consumed"),
  PreAuthorizedCode: grantError("pre-authorized code", "already consumed"),
  // lib/actions/authorization/respond.js
  PushedAuthorizationRequest: {
    reused: () => new errors.InvalidRequestUri("request_uri is invalid, expired, or was already used"),
    gone: () => new errors.InvalidRequestUri("request_uri is invalid, expired, or was already used"),
  },
};

function grantError(label: string, reuse: string) {
  return { reused: () => new errors.InvalidGrant(`${label} ${reuse}`), gone: () => new errors.InvalidGrant(`${label} not found`) };
}

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

  /**
   * Consumes a code or refresh token, or fails: oidc-provider checks
   * `consumed` on what it found and then calls consume, so two concurrent
   * redemptions can both pass its check. The row is consumed with a
   * compare-and-set; the losers are treated as oidc-provider treats a reuse
   * (the token is destroyed, its grant revoked, the client gets 400
   * invalid_grant), except a refresh within REFRESH_REUSE_GRACE of the first
   * consumption, which is the retry that grace allows.
   */
  async consume(id: string): Promise<void> {
    const outcome = await consumeOidcRecord(this.prisma, this.model, id);
    if (outcome.consumed) return;
    const { row } = outcome;
    if (row?.consumedAt && row.consumedAt.getTime() + this.consumedGraceMs > Date.now()) return;
    const fail = reuseErrors[this.model] ?? grantError(this.model, "already consumed");
    if (!row) throw fail.gone();
    await deleteOidcRecord(this.prisma, this.model, id);
    if (row.grantId) await deleteOidcGrant(this.prisma, row.grantId);
    throw fail.reused();
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
