/**
 * Common-password check against zxcvbn-ts's list of ~49,000 passwords seen in
 * breaches (@zxcvbn-ts/language-common, maintained on npm), case-insensitive.
 */
import { createRequire } from "node:module";

let common: Set<string> | undefined;

export function isCommonPassword(password: string): boolean {
  common ??= loadCommonPasswords();
  return common.has(password.toLowerCase());
}

/**
 * Loaded on the first check rather than at start: the package unpacks all of
 * its word lists when loaded (about 12 MB resident, docs/PERFORMANCE.md), and
 * only setting a password needs them, not signing in.
 */
function loadCommonPasswords(): Set<string> {
  const { dictionary } = createRequire(import.meta.url)("@zxcvbn-ts/language-common") as typeof import("@zxcvbn-ts/language-common");
  return new Set((dictionary["passwords-common"] as string[]).map((p) => p.toLowerCase()));
}
