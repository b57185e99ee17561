#!/usr/bin/env node
// The `gatehouse` command: the compiled CLI (dist/cli/main.js), plain
// JavaScript run with no TypeScript loader. In a checkout, dist/ is built by
// `npm run build` (npm install and npm start build it too); when it is
// missing or older than src/, this stops with one line instead of running
// old code.
import { staleBuildReason } from "../scripts/build-state.mjs";

const stale = staleBuildReason(new URL("..", import.meta.url));
if (stale) {
  process.stderr.write(`gatehouse: ${stale}: run \`npm run build\`\n`);
  process.exit(1);
}
await import("../dist/cli/main.js");
