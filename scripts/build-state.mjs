// Whether dist/ (the compiled JavaScript that `npm start` and the `gatehouse`
// command run) is up to date with the TypeScript sources it is built from.
// Plain JavaScript with no dependencies: bin/gatehouse.js and scripts/build.mjs
// load it before any build exists. A build is current when dist/.build-stamp,
// written by scripts/build.mjs after a successful compile and dated to the
// moment that compile started, is newer than every file and folder of src/
// and both tsconfig files (a folder's time changes when a file is added or
// removed). Timestamps, not contents: a check costs a few milliseconds.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const stampName = ".build-stamp";

/** The inputs of the build under `root`, as absolute paths. */
function buildInputs(root) {
  const src = join(root, "src");
  const inputs = [src, join(root, "tsconfig.json"), join(root, "tsconfig.build.json")];
  for (const entry of readdirSync(src, { recursive: true })) inputs.push(join(src, String(entry)));
  return inputs;
}

/**
 * Why dist/ under `root` (a path or a file: URL) cannot be run as the current
 * code, as a short phrase ("dist/ is missing", "dist/ is older than
 * src/config.ts"), or undefined when it can. A tree without src/ (an image
 * or package that ships dist/ alone) is taken as built.
 */
export function staleBuildReason(root) {
  const dir = root instanceof URL ? fileURLToPath(root) : root;
  if (!existsSync(join(dir, "src"))) return undefined;
  let builtAt;
  try {
    builtAt = statSync(join(dir, "dist", stampName)).mtimeMs;
  } catch {
    return "dist/ is missing";
  }
  for (const input of buildInputs(dir)) {
    let changedAt;
    try {
      changedAt = statSync(input).mtimeMs;
    } catch {
      continue; // removed while we looked
    }
    if (changedAt > builtAt) return `dist/ is older than ${relative(dir, input)}`;
  }
  return undefined;
}
