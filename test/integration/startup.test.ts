/** Start-up refuses bad configuration with one clear line, before touching anything. */
import t from "tap";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { root, serverArgs } from "../helpers/processes.ts";

function startServer(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, serverArgs(), {
      cwd: root,
      env: { PATH: process.env.PATH, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const cases: [string, Record<string, string>, string][] = [
  ["a non-numeric PORT", { PORT: "abc" }, 'gatehouse: invalid configuration: PORT must be an integer from 1 to 65535 (got "abc")'],
  ["a malformed DATABASE_URL", { DATABASE_URL: "sqlserver://db" }, "gatehouse: invalid configuration: DATABASE_URL must be a file: (SQLite) or postgresql:// URL"],
  ["production without COOKIE_SECRETS", { NODE_ENV: "production", ISSUER: "https://id.example.com" }, "gatehouse: invalid configuration: COOKIE_SECRETS is required when NODE_ENV=production"],
];

for (const [what, env, line] of cases) {
  t.test(`${what} stops start-up with one line and exit code 1`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-start-"));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const result = await startServer({ ...env, KEYS_DIR: join(dir, "keys"), ...(env.DATABASE_URL ? {} : { DATABASE_URL: `file:${join(dir, "db.sqlite")}` }) });
    t.equal(result.code, 1);
    t.equal(result.stderr.replace(/^oidc-provider WARNING.*\n/m, ""), `${line}\n`);
    t.notOk(existsSync(join(dir, "keys")), "no key folder was created");
    t.notOk(existsSync(join(dir, "db.sqlite")), "no database was created");
  });
}
