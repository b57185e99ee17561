/**
 * The SQLite database holds password hashes, sealed keys and (hashed) session
 * and token ids: only the account Gatehouse runs as may read it. A fresh start
 * creates ./data 0700 and the database file (and SQLite's -wal/-shm siblings)
 * 0600, whatever the umask; an existing file that is more open is tightened.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { bootstrap } from "../../src/bootstrap.ts";
import { migrateDatabase } from "../../src/db/migrate.ts";
import { openDatabase } from "../../src/db/database.ts";
import { testConfig } from "../helpers/config.ts";

const modeOf = (path: string) => statSync(path).mode & 0o777;
const octal = (mode: number) => `0${mode.toString(8)}`;

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-mode-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// The usual umask: without the fix, files come out 0644 and directories 0755.
const previousUmask = process.umask(0o022);
t.teardown(() => void process.umask(previousUmask));

t.test("a fresh start creates the data directory 0700 and the database file 0600", async (t) => {
  const root = tempDir(t);
  const dataDir = join(root, "data");
  const file = join(dataDir, "gatehouse.db");
  const config = testConfig(t, { DATABASE_URL: `file:${file}` });
  const runtime = await bootstrap(config);
  t.teardown(() => runtime.db.close());

  t.equal(octal(modeOf(dataDir)), "0700", "the data directory Gatehouse created");
  t.equal(octal(modeOf(file)), "0600", "the database file");
  // The database is in WAL mode and open: SQLite has its -wal and -shm files.
  for (const sibling of ["-wal", "-shm"]) {
    t.ok(existsSync(file + sibling), `${sibling} exists while the database is open`);
    t.equal(octal(modeOf(file + sibling)), "0600", `the ${sibling} file`);
  }
  // A write goes through the WAL: still nothing readable by others.
  await runtime.db.prisma.user.create({ data: { id: "u1", email: "mode@example.test" } });
  for (const path of [file, file + "-wal", file + "-shm"]) t.equal(octal(modeOf(path)), "0600", path);
});

t.test("an existing database file and siblings that are more open are made 0600", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "old.db");
  await migrateDatabase(`file:${file}`, "sqlite");
  writeFileSync(file + "-journal", "");
  for (const path of [file, file + "-journal"]) chmodSync(path, 0o644);

  await migrateDatabase(`file:${file}`, "sqlite");
  t.equal(octal(modeOf(file)), "0600", "migrate (the first to open it at start-up) tightens the file");
  t.equal(octal(modeOf(file + "-journal")), "0600", "and its journal");

  chmodSync(file, 0o664);
  const db = await openDatabase(`file:${file}`, "sqlite");
  t.teardown(() => db.close());
  t.equal(octal(modeOf(file)), "0600", "openDatabase tightens it too");
});

t.test("a directory that already exists keeps its mode", async (t) => {
  const dir = tempDir(t);
  const shared = join(dir, "shared");
  mkdirSync(shared, { mode: 0o755 });
  chmodSync(shared, 0o755);
  await migrateDatabase(`file:${join(shared, "g.db")}`, "sqlite");
  t.equal(octal(modeOf(shared)), "0755", "Gatehouse does not change a directory it did not create");
  t.equal(octal(modeOf(join(shared, "g.db"))), "0600");
});
