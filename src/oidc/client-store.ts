/**
 * Reads clients from our own table for oidc-provider: the stored registration
 * metadata plus client_id and the client secret, unsealed with the master key.
 *
 * Every token, introspection and revocation request authenticates a client,
 * so clients are cached in memory, secret unsealed, once per change: the
 * cache is served only while the table's version (db/cache-versions.ts) is
 * the one it was filled under, and a change anywhere (an admin API call on
 * another instance, the CLI, SQL) empties it. Unknown ids are not cached, so
 * requests naming made-up clients cannot fill it.
 */
import type { Database } from "../db/database.ts";
import { findClientById } from "../db/clients.ts";
import { watchCacheVersion, type CacheVersion } from "../db/cache-versions.ts";
import { builtInScopes } from "../scopes.ts";
import { sealContext, type MasterKeyRing } from "../crypto/master-keys.ts";

export interface ClientStore {
  /** oidc-provider client metadata, or undefined for an unknown client. */
  findMetadata(clientId: string): Promise<Record<string, unknown> | undefined>;
  /** Drops every cached client: call after this process changed one. */
  invalidate(): void;
  close(): Promise<void>;
}

/** What a client's sealed secret is bound to: its own row. */
export function clientSecretContext(clientId: string): string {
  return sealContext("Client", clientId, "client_secret");
}

/**
 * A stored client's metadata as oidc-provider takes it. oidc-provider checks
 * a client's `scope` against the scopes it was configured with
 * (`scopes`: the built-in ones), while a client may also be allowed scopes
 * of registered resource servers: those go in `resource_scope` (an
 * extraClientMetadata property), which getResourceServerInfo reads
 * (oidc/resource-indicators.ts). An empty scope is left out.
 */
export function providerMetadataOf(metadata: Record<string, unknown>): Record<string, unknown> {
  const { scope, ...rest } = metadata;
  const scopes = typeof scope === "string" ? scope.split(" ").filter(Boolean) : [];
  const builtIn = scopes.filter((s) => (builtInScopes as readonly string[]).includes(s));
  const resource = scopes.filter((s) => !(builtInScopes as readonly string[]).includes(s));
  return { ...rest, ...(builtIn.length && { scope: builtIn.join(" ") }), ...(resource.length && { resource_scope: resource.join(" ") }) };
}

/** At most this many clients are kept; the oldest entry goes first. */
const maxEntries = 10_000;

/** A store that reads the table on every lookup (the CLI, tests). */
export function createClientStore(db: Database, ring: MasterKeyRing): ClientStore {
  return { findMetadata: (clientId) => loadClient(db, ring, clientId), invalidate() {}, async close() {} };
}

async function loadClient(db: Database, ring: MasterKeyRing, clientId: string): Promise<Record<string, unknown> | undefined> {
  const row = await findClientById(db, clientId);
  if (!row) return undefined;
  const metadata: Record<string, unknown> = { ...providerMetadataOf(row.metadata as Record<string, unknown>), client_id: row.id, first_party: row.firstParty };
  if (row.secretEncrypted) metadata.client_secret = await ring.decrypt(row.secretEncrypted, clientSecretContext(row.id));
  return metadata;
}

/** The server's store: clients cached, secrets unsealed once per change of the table. */
export async function createCachedClientStore(
  db: Database,
  ring: MasterKeyRing,
  log?: (message: string, error?: unknown) => void,
): Promise<ClientStore> {
  const load = (clientId: string) => loadClient(db, ring, clientId);
  const version: CacheVersion = await watchCacheVersion(db, "clients", log);
  let cachedUnder: string | undefined;
  const entries = new Map<string, Record<string, unknown>>();
  return {
    async findMetadata(clientId) {
      const now = await version.current();
      if (now !== cachedUnder) {
        entries.clear();
        cachedUnder = now;
      }
      if (now === undefined) return load(clientId);
      const hit = entries.get(clientId);
      // A copy: what oidc-provider gets is its own to keep.
      if (hit) return { ...hit };
      const metadata = await load(clientId);
      // Kept only if nothing changed while it was read.
      if (metadata && cachedUnder === now) {
        if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
        entries.set(clientId, metadata);
      }
      return metadata && { ...metadata };
    },
    invalidate() {
      version.bump();
    },
    close: () => version.close(),
  };
}
