/**
 * tap's `before` program (.taprc), run once before the test files, also for
 * `npx tap test/one.test.ts`: compiles src/ to dist/ when dist/ is missing or
 * older than src/, since the tests run the server and the gatehouse command
 * from dist/ as child processes (README, "Testing").
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { root } from "./processes.ts";

// tap's loader and coverage hooks (NODE_OPTIONS) stay out of the build.
const { NODE_OPTIONS: _, ...env } = process.env;
const result = spawnSync(process.execPath, [join(root, "scripts/build.mjs"), "--if-stale"], { cwd: root, env, stdio: "inherit" });
process.exitCode = result.status ?? 1;
