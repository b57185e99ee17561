/** A Config for tests, built through the real parser. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "tap";
import { loadConfig, type Config } from "../../src/config.ts";

export function testConfig(t: Test, env: Record<string, string> = {}): Config {
  const keysDir = mkdtempSync(join(tmpdir(), "gatehouse-keys-"));
  t.teardown(() => rmSync(keysDir, { recursive: true, force: true }));
  return loadConfig({ KEYS_DIR: keysDir, LOG_LEVEL: "silent", ...env });
}
