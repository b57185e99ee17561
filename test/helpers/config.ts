/** A Config for tests, built through the real parser. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "tap";
import { loadConfig, type Config } from "../../src/config.ts";

export function testConfig(t: Test, env: Record<string, string> = {}): Config {
  const keysDir = mkdtempSync(join(tmpdir(), "gatehouse-keys-"));
  t.teardown(() => rmSync(keysDir, { recursive: true, force: true }));
  // Without SMTP_URL, email is written as files: into a throwaway folder, never ./data/outbox.
  const outboxDir = mkdtempSync(join(tmpdir(), "gatehouse-outbox-"));
  t.teardown(() => rmSync(outboxDir, { recursive: true, force: true }));
  // The email worker is woken by queueing (at commit) and by its own retry
  // timers; its safety-net poll (for other processes' messages) is slowed so
  // that it does not add statements to tests that count them. Tests of
  // messages queued by another process set EMAIL_POLL_INTERVAL.
  return loadConfig({ KEYS_DIR: keysDir, LOG_LEVEL: "silent", EMAIL_OUTBOX_DIR: outboxDir, EMAIL_POLL_INTERVAL: "1h", ...env });
}
