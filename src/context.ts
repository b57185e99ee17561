/** What route modules are given: the app's dependencies, built once in app.ts. */
import type { Config } from "./config.ts";
import type { Database } from "./db/database.ts";
import type { MasterKeyRing } from "./crypto/master-keys.ts";
import type { StoredIds } from "./crypto/stored-ids.ts";
import type { ProviderHost } from "./oidc/provider-host.ts";
import type { Csrf } from "./auth/csrf.ts";
import type { SignInLimiter } from "./auth/sign-in-limiter.ts";
import type { UserCodeLimiter } from "./auth/user-code-limiter.ts";
import type { SignInDeps } from "./services/sign-in.ts";
import type { Metrics } from "./metrics.ts";
import type { Redis } from "ioredis";
import type { LifecycleDeps } from "./services/account-lifecycle.ts";

export interface AppContext {
  config: Config;
  db: Database;
  ring: MasterKeyRing;
  /** The stored (keyed-hash) form of session and interaction ids, tokens and codes. */
  storedIds: StoredIds;
  host: ProviderHost;
  csrf: Csrf;
  limiter: SignInLimiter;
  /** Wrong user codes at the device verification page, per address (RFC 8628 section 5.1). */
  userCodes: UserCodeLimiter;
  /** What signing in needs (limits, argon2 parameters, audit key, metrics), built once. */
  signIn: SignInDeps;
  metrics: Metrics;
  /** What the email flows need (verification, reset, registration, invitations), built once. */
  lifecycle: LifecycleDeps;
  /** Shared counters between instances, when REDIS_URL is set. */
  redis: Redis | undefined;
}
