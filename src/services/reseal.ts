/**
 * Master key rotation (README, "Rotating the master key"): every value sealed
 * with the master key ring is listed here once, as a table, a column and the
 * context its value is bound to. `gatehouse keys reseal` re-encrypts each
 * with the newest master key, and start-up refuses a value sealed with a
 * master key that is no longer configured. A new sealed column is one more
 * entry in `sealedColumns`.
 */
import { decodeProtectedHeader } from "jose";
import type { Database } from "../db/transaction.ts";
import type { MasterKeyRing } from "../crypto/master-keys.ts";
import { pageSealedSigningKeys, replaceSealedSigningKey } from "../db/signing-keys.ts";
import { pageSealedClientSecrets, replaceSealedClientSecret } from "../db/clients.ts";
import { privateJwkContext } from "../oidc/keys.ts";
import { clientSecretContext } from "../oidc/client-store.ts";
import { pageSealedTotpSecrets, replaceSealedTotpSecret } from "../db/mfa.ts";
import { totpSecretContext } from "./mfa.ts";
import { AuditChainError, recordAuditEvent, rekeyAuditChain, verifyAuditChain } from "./audit.ts";
import type { Actor } from "./actor.ts";

export interface SealedColumn {
  /** "Table.column", as printed by `keys reseal`. */
  name: string;
  /** The context the value of row `id` is sealed for. */
  context(id: string): string;
  /** Rows with a sealed value, by id, after `after`. */
  page: (db: Database, after: string | undefined, limit: number) => Promise<{ id: string; sealed: string }[]>;
  /** Replaces the value of row `id` only if it is still `from`. */
  replace: (db: Database, id: string, from: string, to: string) => Promise<boolean>;
}

/** Every sealed value Gatehouse stores. */
export const sealedColumns: readonly SealedColumn[] = [
  { name: "SigningKey.privateJwkEncrypted", context: privateJwkContext, page: pageSealedSigningKeys, replace: replaceSealedSigningKey },
  {
    name: "Client.secretEncrypted",
    context: clientSecretContext,
    // db/clients.ts still takes the Prisma client.
    page: (db, after, limit) => pageSealedClientSecrets(db, after, limit),
    replace: (db, id, from, to) => replaceSealedClientSecret(db, id, from, to),
  },
  { name: "UserTotp.secretSealed", context: totpSecretContext, page: pageSealedTotpSecrets, replace: replaceSealedTotpSecret },
];

const pageSize = 200;

async function* walkSealed(db: Database, column: SealedColumn): AsyncGenerator<{ id: string; sealed: string }> {
  let after: string | undefined;
  for (;;) {
    const page = await column.page(db, after, pageSize);
    yield* page;
    if (page.length < pageSize) return;
    after = page[page.length - 1]!.id;
  }
}

/** The master key id a sealed value names in its JWE header, or undefined. */
function sealedWith(value: string): string | undefined {
  try {
    const kid = decodeProtectedHeader(value).kid;
    return typeof kid === "string" ? kid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The first stored value sealed with a master key that is not in the ring,
 * by its header alone (nothing is decrypted), or undefined. Start-up stops
 * on one, naming the key, rather than fail later on the request that needs
 * it.
 */
export async function findValueSealedWithUnknownKey(db: Database, ring: MasterKeyRing): Promise<{ column: string; id: string; kid: string } | undefined> {
  for (const column of sealedColumns) {
    for await (const row of walkSealed(db, column)) {
      const kid = sealedWith(row.sealed) ?? "(none)";
      if (!ring.kids.includes(kid)) return { column: column.name, id: row.id, kid };
    }
  }
  return undefined;
}

export interface ResealResult {
  /** The master key everything is sealed with now. */
  master_key: string;
  /** Values re-encrypted by this run. */
  resealed: number;
  by_column: Record<string, number>;
  /** Audit events given an attestation under the newest master key. */
  audit_events_rekeyed: number;
}

/**
 * `gatehouse keys reseal`: re-encrypts every sealed value that is not sealed
 * with the newest master key, then re-keys the audit chain
 * (rekeyAuditChain), so that older master keys can be removed from
 * MASTER_KEYS. Safe while instances serve (they must already have the new
 * master key in their MASTER_KEYS): each value is opened with the ring and
 * replaced by a compare-and-set, a row at a time, so a value changed
 * meanwhile is left as it is (it was sealed with the newest key anyway).
 * Idempotent: a second run reseals nothing. Refuses, before writing
 * anything, when a value is sealed with a master key not in the ring or the
 * audit chain does not verify.
 */
export async function resealSealedValues(db: Database, ring: MasterKeyRing, actor: Actor): Promise<ResealResult> {
  const newest = ring.kids[0]!;
  const unknown = await findValueSealedWithUnknownKey(db, ring);
  if (unknown) {
    throw new Error(`${unknown.column} of ${unknown.id} is sealed with master key ${unknown.kid}, which is not in MASTER_KEYS: add it back (after the newest) and run reseal again`);
  }
  const chain = await verifyAuditChain(db, ring);
  if (!chain.ok) {
    throw new AuditChainError(`the audit chain does not verify at event ${chain.firstBad.id} (seq ${chain.firstBad.seq}): ${chain.firstBad.reason}; nothing was resealed`);
  }
  const byColumn: Record<string, number> = {};
  for (const column of sealedColumns) {
    let count = 0;
    for await (const row of walkSealed(db, column)) {
      if (sealedWith(row.sealed) === newest) continue;
      const context = column.context(row.id);
      const resealed = await ring.encrypt(await ring.decrypt(row.sealed, context), context);
      if (await column.replace(db, row.id, row.sealed, resealed)) count += 1;
    }
    byColumn[column.name] = count;
  }
  const rekey = await rekeyAuditChain(db, ring, actor);
  const resealed = Object.values(byColumn).reduce((a, b) => a + b, 0);
  await recordAuditEvent(db, { ...actor, type: "master_key.resealed", data: { master_key: newest, resealed, by_column: byColumn } });
  return { master_key: newest, resealed, by_column: byColumn, audit_events_rekeyed: rekey.rekeyed };
}
