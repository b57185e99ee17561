/**
 * Keeps each instance's oidc-provider in step with the key set in the
 * database, and runs the key lifecycle (README, "Signing keys").
 *
 * Every KEYS_POLL_INTERVAL (default 5 s, at most 10 s) each instance reads
 * the key set's kids, states and dates (a handful of rows, no private
 * parts). When the lifecycle has something due (a next key to promote, a
 * retired key to remove, an automatic rotation), the instance tries the
 * lifecycle lock and, if it gets it, makes the change; the others skip it
 * and pick the result up. When the kids and states differ from those of the
 * running provider, it loads the keys, builds a new provider and swaps it in
 * (ProviderHost.swap): requests in flight finish on the old one.
 *
 * Why polling rather than PostgreSQL's LISTEN/NOTIFY: it works the same on
 * SQLite, needs no dedicated connection (Prisma's pool cannot hold one), and
 * a missed notification cannot leave an instance on an old key set; one
 * indexed read of a few rows every few seconds costs nothing measurable.
 */
import type Provider from "oidc-provider";
import type { FastifyBaseLogger } from "fastify";
import type { Database } from "../db/database.ts";
import type { MasterKeyRing } from "../crypto/master-keys.ts";
import { listSigningKeyStates } from "../db/signing-keys.ts";
import { keySetVersion, loadKeySet, missingCurrentAlgs, type KeySet } from "../oidc/keys.ts";
import type { ProviderHost } from "../oidc/provider-host.ts";
import { hasChanges, planKeyLifecycle, runKeyLifecycle, type KeyChanges, type KeyPolicy } from "../services/signing-keys.ts";
import { systemActor } from "../services/actor.ts";

export interface KeySetWatcher {
  /**
   * One round now: the lifecycle if something is due, then a swap if the key
   * set changed. Resolves when done; concurrent calls share one round.
   */
  check(): Promise<void>;
  stop(): Promise<void>;
}

export interface KeySetWatcherDeps {
  db: Database;
  ring: MasterKeyRing;
  host: ProviderHost;
  /** Builds a provider for a key set, with every per-provider set-up (app.ts). */
  build(keySet: KeySet): Provider;
  policy: KeyPolicy;
  intervalSeconds: number;
  log: FastifyBaseLogger;
}

function summary(changes: KeyChanges) {
  return {
    activated: changes.activate.map((k) => k.kid),
    retired: changes.retire.map((k) => k.kid),
    removed: changes.remove.map((k) => k.kid),
    created: changes.create.map((c) => `${c.alg}:${c.state}`),
  };
}

/**
 * Starts the watcher of one instance (app.ts; stopped when the app closes).
 * The first round runs one interval after the start: the key set the app was
 * built with is fresh.
 */
export function startKeySetWatcher({ db, ring, host, build, policy, intervalSeconds, log }: KeySetWatcherDeps): KeySetWatcher {
  let running: Promise<void> | undefined;
  let stopped = false;

  const round = async () => {
    let states = await listSigningKeyStates(db);
    if (hasChanges(planKeyLifecycle(states, new Date(), policy))) {
      const changes = await runKeyLifecycle(db, ring, policy, systemActor);
      if (changes && hasChanges(changes)) log.info(summary(changes), "signing key lifecycle: key set changed");
      states = await listSigningKeyStates(db);
    }
    if (stopped || keySetVersion(states) === host.keySet.version) return;
    const keySet = await loadKeySet(db, ring);
    if (stopped) return;
    host.swap(build(keySet), keySet);
    const missing = missingCurrentAlgs(keySet);
    log.info({ version: keySet.version, keys: keySet.states }, "signing keys changed: new provider in service");
    if (missing.length) log.error({ algs: missing }, "no current signing key for these algorithms: not ready");
  };

  const check = () => {
    running ??= round().finally(() => {
      running = undefined;
    });
    return running;
  };

  const timer = setInterval(() => {
    check().catch((error: unknown) => log.error({ err: error }, "signing key check failed: the running key set stays in service"));
  }, intervalSeconds * 1000);
  timer.unref();

  return {
    check,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
