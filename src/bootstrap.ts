/**
 * What every process (server and CLI) does before its work: apply migrations,
 * open the database, load the master key ring, and make sure a signing key set
 * exists. Kept in one place so `npm start` and `gatehouse` agree.
 */
import type { Config } from "./config.ts";
import { openDatabase, type Database } from "./db/database.ts";
import { migrateDatabase } from "./db/migrate.ts";
import { loadMasterKeyRing, MasterKeyError, type MasterKeyRing } from "./crypto/master-keys.ts";
import { auditKeyOf } from "./services/audit.ts";
import { findValueSealedWithUnknownKey } from "./services/reseal.ts";
import { ensureSigningKeys } from "./oidc/keys.ts";

export interface Runtime {
  db: Database;
  ring: MasterKeyRing;
  /** Migrations applied by this start. */
  migrated: string[];
  /** Signing keys created by this start. */
  createdKeys: string[];
}

export interface BootstrapOptions {
  migrate?: boolean;
  ensureKeys?: boolean;
  /**
   * Refuse to start when a stored value is sealed with a master key that is
   * not in MASTER_KEYS (the server: better to stop at once, naming the key,
   * than to fail the requests that need the value).
   */
  checkSealed?: boolean;
}

export async function bootstrap(config: Config, { migrate = true, ensureKeys = true, checkSealed = ensureKeys }: BootstrapOptions = {}): Promise<Runtime> {
  const migrated = migrate ? await migrateDatabase(config.databaseUrl, config.databaseProvider) : [];
  const ring = loadMasterKeyRing(config);
  const db = await openDatabase(config.databaseUrl, config.databaseProvider, { auditKey: auditKeyOf(ring), poolSize: config.databasePoolSize });
  try {
    if (checkSealed) {
      const unknown = await findValueSealedWithUnknownKey(db, ring);
      if (unknown) {
        throw new MasterKeyError(
          `${unknown.column} of ${unknown.id} is sealed with master key ${unknown.kid}, which is not in MASTER_KEYS (configured: ${ring.kids.join(", ")})`,
        );
      }
    }
    const createdKeys = ensureKeys ? await ensureSigningKeys(db, ring) : [];
    return { db, ring, migrated, createdKeys };
  } catch (error) {
    await db.close();
    throw error;
  }
}
