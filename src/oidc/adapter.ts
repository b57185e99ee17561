/**
 * The database-backed oidc-provider adapter: every model (Session, Grant,
 * AccessToken, AuthorizationCode, RefreshToken, ClientCredentials, Interaction,
 * ReplayDetection, PushedAuthorizationRequest, ...) is a row of OidcRecord;
 * Client is read from our own clients table (see client-store.ts).
 * Contract: https://github.com/panva/node-oidc-provider/blob/main/example/my_adapter.js
 *
 * Credentials are never stored in clear: a token's, code's or session's row
 * is keyed by the keyed hash of its id, and its payload keeps no copy of it
 * (see stored-payloads.ts). oidc-provider always presents the id it looks
 * for, so it sees no difference.
 */
import { errors, type Adapter, type AdapterPayload } from "oidc-provider";
import type { Database } from "../db/database.ts";
import {
  consumeOidcRecord,
  deleteOidcGrant,
  deleteOidcRecord,
  deleteOidcRecordsByGrant,
  findOidcRecord,
  findOidcRecordByUid,
  findOidcRecordByUserCode,
  findOidcRecordsWithGrant,
  livePayload,
  upsertOidcRecord,
  type StoredRecord,
} from "../db/oidc-records.ts";
import { forgetRequestReads, requestReads } from "./request-scope.ts";
import type { ClientStore } from "./client-store.ts";
import type { StoredIds } from "../crypto/stored-ids.ts";
import { idByUserCode, protectPayload, revealPayload, storesHashedId } from "./stored-payloads.ts";

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

/**
 * The tokens a request presents. Within one provider request they are looked
 * up together with the Grant they name (findOidcRecordsWithGrant): the token
 * endpoint reads a code or refresh token and then its grant, userinfo an
 * access token and its grant, and introspection without a token_type_hint
 * looks the value up as three models at once.
 */
const presentedTokens = ["AccessToken", "ClientCredentials", "RefreshToken", "AuthorizationCode"];
const isPresentedToken = new Set(presentedTokens);

/** Request-scope keys (request-scope.ts). */
const tokenReadKey = (storedId: string) => `token:${storedId}`;
const grantReadKey = (grantId: string) => `Grant:${grantId}`;

function grantError(label: string, reuse: string) {
  return { reused: () => new errors.InvalidGrant(`${label} ${reuse}`), gone: () => new errors.InvalidGrant(`${label} not found`) };
}


/**
 * Seconds a model's row stays readable past its payload's expiry. A
 * DeviceCode is still found for a while, so that a device polling after it
 * expired is told expired_token (RFC 8628 section 3.5) rather than
 * invalid_grant: oidc-provider checks the payload's own expiry
 * (`isExpired`) on every use (lib/actions/grants/device_code.js,
 * lib/actions/code_verification.js), so the longer row grants nothing.
 */
const keptPastExpiry: Record<string, number> = { DeviceCode: 300 };

class OidcRecordAdapter implements Adapter {
  constructor(
    private readonly db: Database,
    private readonly model: string,
    /** How ids are stored; undefined for models whose ids are not credentials. */
    private readonly ids: StoredIds | undefined,
    /** For RefreshToken: how long a rotated-out token still reads as unconsumed. */
    private readonly consumedGraceMs = 0,
  ) {}

  /** Every id the row of `id` may be stored under (one per master key). */
  private rowIds(id: string): string[] {
    return this.ids ? this.ids.candidates(id) : [id];
  }

  private reveal(id: string | undefined, payload: Record<string, unknown> | undefined): AdapterPayload | undefined {
    return (payload && this.ids ? revealPayload(this.ids, id, payload) : payload) as AdapterPayload | undefined;
  }

  /**
   * Runs one of the request's writes: what the request read may be stale,
   * both before the write and once it is done (on PostgreSQL a read made
   * while the write is out, on another connection of the pool, can see the
   * rows as they were before it).
   */
  private async writing<T>(write: () => Promise<T>): Promise<T> {
    forgetRequestReads();
    try {
      return await write();
    } finally {
      forgetRequestReads();
    }
  }

  upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    return this.writing(() => this.write(id, payload, expiresIn));
  }

  private async write(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    // No expiresIn means "no expiry"; a lifetime of 0 or less is already over.
    const expiresAt = typeof expiresIn === "number" ? new Date(Date.now() + (expiresIn + (keptPastExpiry[this.model] ?? 0)) * 1000) : null;
    const { model, ids } = this;
    if (!ids) {
      await upsertOidcRecord(this.db, { model, id, payload: payload as Record<string, unknown>, expiresAt });
      return;
    }
    // Written under the newest key; a copy under an older key is replaced.
    const [storedId, ...older] = ids.candidates(id);
    await upsertOidcRecord(this.db, {
      model,
      id: storedId!,
      payload: protectPayload(ids, model, id, payload as Record<string, unknown>),
      userCode: typeof payload.userCode === "string" ? ids.of(payload.userCode) : null,
      expiresAt,
      replaces: older,
    });
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const reads = requestReads();
    if (reads && isPresentedToken.has(this.model)) return this.reveal(id, await this.findPresented(reads, id));
    if (reads && this.model === "Grant") {
      const read = reads.get(grantReadKey(id)) as Promise<StoredRecord | undefined> | undefined;
      if (read) return livePayload(await read) as AdapterPayload | undefined;
    }
    return this.reveal(id, await findOidcRecord(this.db, this.model, this.rowIds(id), this.consumedGraceMs));
  }

  /** A presented token, read with its grant once per request (see presentedTokens). */
  private async findPresented(reads: NonNullable<ReturnType<typeof requestReads>>, id: string) {
    const ids = this.rowIds(id);
    const key = tokenReadKey(ids[0]!);
    let read = reads.get(key) as Promise<StoredRecord[]> | undefined;
    if (!read) {
      read = findOidcRecordsWithGrant(this.db, presentedTokens, ids);
      reads.set(key, read);
      // What the Grant adapter will be asked next, found or not; unless the
      // request wrote while this read was out (the scope was emptied and
      // this read is no longer in it): what it found may be stale.
      void read.then(
        (records) => {
          if (reads.get(key) !== read) return;
          for (const token of records) {
            if (token.model === "Grant" || !token.grantId || reads.has(grantReadKey(token.grantId))) continue;
            reads.set(grantReadKey(token.grantId), Promise.resolve(records.find((r) => r.model === "Grant" && r.id === token.grantId)));
          }
        },
        () => {},
      );
    }
    return livePayload((await read).find((r) => r.model === this.model), this.consumedGraceMs);
  }

  /** oidc-provider looks Sessions up by uid; the session's id is not in the result (only its cookie holds it). */
  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.reveal(undefined, await findOidcRecordByUid(this.db, this.model, uid));
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const userCodes = this.ids ? this.ids.candidates(userCode) : [userCode];
    const stored = await findOidcRecordByUserCode(this.db, this.model, userCodes);
    return this.reveal(stored && this.ids ? idByUserCode(this.ids, userCode, stored) : undefined, stored);
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
  consume(id: string): Promise<void> {
    return this.writing(() => this.consumeOnce(id));
  }

  private async consumeOnce(id: string): Promise<void> {
    const outcome = await consumeOidcRecord(this.db, this.model, this.rowIds(id));
    if (outcome.consumed) return;
    const { row } = outcome;
    if (row?.consumedAt && row.consumedAt.getTime() + this.consumedGraceMs > Date.now()) return;
    const fail = reuseErrors[this.model] ?? grantError(this.model, "already consumed");
    if (!row) throw fail.gone();
    await deleteOidcRecord(this.db, this.model, this.rowIds(id));
    if (row.grantId) await deleteOidcGrant(this.db, row.grantId);
    throw fail.reused();
  }

  destroy(id: string): Promise<void> {
    return this.writing(() => deleteOidcRecord(this.db, this.model, this.rowIds(id)));
  }

  revokeByGrantId(grantId: string): Promise<void> {
    // oidc-provider calls this once per model; each call deletes its own rows.
    return this.writing(async () => {
      await deleteOidcRecordsByGrant(this.db, this.model, grantId);
    });
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
 * `storedIds` keys the stored ids of credentials (storedIdsFor(ring)).
 * `refreshReuseGraceSeconds` (REFRESH_REUSE_GRACE, see .env.example): within
 * that time after a refresh token was rotated out, presenting it again
 * rotates again instead of counting as reuse, so a client that lost the
 * response to a refresh can retry without losing its grant.
 */
export function createAdapterFactory(
  db: Database,
  clients: ClientStore,
  storedIds: StoredIds,
  refreshReuseGraceSeconds = 0,
): (model: string) => Adapter {
  return (model) => {
    if (model === "Client") return new ClientAdapter(clients);
    const ids = storesHashedId(model) ? storedIds : undefined;
    return new OidcRecordAdapter(db, model, ids, model === "RefreshToken" ? refreshReuseGraceSeconds * 1000 : 0);
  };
}
