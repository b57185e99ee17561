/**
 * oidc-provider's findAccount: maps a subject to its claims (OpenID Connect Core 1.0 section 5.4; docs/integrating.md).
 * A disabled or deleted user has no account, so their sessions and tokens stop
 * resolving at once.
 */
import type { FindAccount } from "oidc-provider";
import type { Database } from "../db/database.ts";
import { findUserProfile } from "../db/users.ts";

export { claimsByScope } from "../scopes.ts";

export function createFindAccount(db: Database): FindAccount {
  return async (_ctx, sub) => {
    const user = await findUserProfile(db, sub);
    if (!user || user.disabled) return undefined;
    return {
      accountId: user.id,
      async claims() {
        return {
          sub: user.id,
          email: user.email,
          // True only once the user followed a link sent to this address, or an
          // operator created the user as verified (OpenID Connect Core 1.0 section 5.1).
          email_verified: user.emailVerified,
          name: user.name ?? undefined,
          role: user.role,
        };
      },
    };
  };
}
