/**
 * What every process (server and CLI) does before its work: apply migrations,
 * open the database, load the master key ring, and make sure a signing key set
 * exists. Kept in one place so `npm start` and `gatehouse` agree.
 */
import type { Config } from "./config.ts";
import { openDatabase, type Database } from "./db/database.ts";
import { migrateDatabase } from "./db/migrate.ts";
import { loadMasterKeyRing, type MasterKeyRing } from "./crypto/master-keys.ts";
import { auditKeyOf } from "./services/audit.ts";
import { ensureSigningKeys } from "./oidc/keys.ts";

export interface Runtime {
  db: Database;
  ring: MasterKeyRing;
  /** Migrations applied by this start. */
  migrated: string[];
  /** Signing keys created by this start. */
  createdKeys: string[];
}

export async function bootstrap(config: Config, { migrate = true, ensureKeys = true } = {}): Promise<Runtime> {
  const migrated = migrate ? await migrateDatabase(config.databaseUrl, config.databaseProvider) : [];
  const ring = loadMasterKeyRing(config);
  const db = await openDatabase(config.databaseUrl, config.databaseProvider, { auditKey: auditKeyOf(ring) });
  try {
    const createdKeys = ensureKeys ? await ensureSigningKeys(db, ring) : [];
    return { db, ring, migrated, createdKeys };
  } catch (error) {
    await db.close();
    throw error;
  }
}
