/**
 * Tells an in-memory cache whether the table behind it may have changed,
 * whoever changed it: this process, another instance, the CLI, or an
 * operator's own SQL. Database triggers (in the migrations) bump a row of
 * CacheVersion on every write to a cached table, in the writer's transaction.
 *
 * - SQLite: every instance is a process on the same file. Each lookup reads
 *   the version row (db.sql: one prepared statement on the process's own
 *   connection, whose page cache stays warm), so a write that has committed
 *   is seen by the next lookup of every process. The trigger sets a random
 *   value, so a value read inside a transaction that then rolled back is
 *   never current again.
 * - PostgreSQL: the trigger also sends `NOTIFY gatehouse_cache`, delivered
 *   to every listening session when the writer commits. Each instance keeps
 *   one connection listening and counts notifications; while that
 *   connection is down the cache is not used at all (every lookup reads the
 *   database), and it is emptied once listening again, so a missed
 *   notification can never leave a stale entry in use. Another instance's
 *   change is seen within the notification's delivery time (milliseconds on
 *   a LAN); this process's own changes are seen at once (`bump()`).
 *
 * A reader takes `current()` BEFORE it reads the rows it will cache: a write
 * that commits in between changes the version, so the entry is refused at
 * its next use rather than served stale.
 */
import type { Database } from "./database.ts";

export interface CacheVersion {
  /**
   * A token that changes whenever the table may have changed; undefined
   * when that cannot be known right now (do not use the cache).
   */
  current(): Promise<string | undefined> | string | undefined;
  /** Marks a change made by this process (after its transaction committed). */
  bump(): void;
  close(): Promise<void>;
}

/** The channel of the PostgreSQL trigger function gatehouse_bump_cache_version. */
const channel = "gatehouse_cache";

/** The watchers of each open database, by cache name: what noteChanged() bumps. */
const watchers = new WeakMap<Database, Map<string, Set<CacheVersion>>>();

export async function watchCacheVersion(db: Database, name: string, log?: (message: string, error?: unknown) => void): Promise<CacheVersion> {
  const version = db.provider === "sqlite" ? watchSqlite(db, name) : await watchPostgres(db.url, name, log);
  let byName = watchers.get(db);
  if (!byName) watchers.set(db, (byName = new Map()));
  let set = byName.get(name);
  if (!set) byName.set(name, (set = new Set()));
  set.add(version);
  return {
    current: () => version.current(),
    bump: () => version.bump(),
    async close() {
      set.delete(version);
      await version.close();
    },
  };
}

/**
 * Tells this process's caches of `name` that it changed the table, once
 * the change has committed: they stop serving what they hold at once,
 * without waiting for the database's notification.
 */
export function noteChanged(db: Database, name: string): void {
  for (const version of watchers.get(db)?.get(name) ?? []) version.bump();
}

function watchSqlite(db: Database, name: string): CacheVersion {
  // bump() takes effect even before another read of the row.
  let local = 0;
  return {
    async current() {
      const [row] = await db.sql.query(`SELECT "version" FROM "CacheVersion" WHERE "name" = ?`, [name]);
      return row ? `${String(row.version)}.${local}` : undefined;
    },
    bump() {
      local += 1;
    },
    async close() {},
  };
}

async function watchPostgres(url: string, name: string, log?: (message: string, error?: unknown) => void): Promise<CacheVersion> {
  const { default: pg } = await import("pg");
  let generation = 0;
  let listening = false;
  let closed = false;
  let client: InstanceType<typeof pg.Client> | undefined;
  let retry: NodeJS.Timeout | undefined;

  const connect = async (): Promise<void> => {
    const next = new pg.Client({ connectionString: url });
    const lost = (error?: unknown) => {
      if (client !== next) return;
      listening = false;
      client = undefined;
      next.end().catch(() => {});
      if (closed) return;
      log?.("cache invalidation connection lost: caches bypassed until it is back", error);
      retry = setTimeout(() => void connect().catch(() => {}), 1000);
      retry.unref();
    };
    next.on("notification", (message) => {
      if (message.channel === channel && message.payload === name) generation += 1;
    });
    next.on("error", lost);
    next.on("end", () => lost());
    client = next;
    try {
      await next.connect();
      await next.query(`LISTEN ${channel}`);
    } catch (error) {
      lost(error);
      throw error;
    }
    // Whatever happened while nobody listened is unknown: start afresh.
    generation += 1;
    listening = true;
  };
  await connect();

  return {
    current() {
      return listening ? String(generation) : undefined;
    },
    bump() {
      generation += 1;
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      const c = client;
      client = undefined;
      listening = false;
      await c?.end().catch(() => {});
    },
  };
}
