/**
 * Common-password check against zxcvbn-ts's list of ~49,000 passwords seen in
 * breaches (@zxcvbn-ts/language-common, maintained on npm), case-insensitive.
 */
import { dictionary } from "@zxcvbn-ts/language-common";

let common: Set<string> | undefined;

export function isCommonPassword(password: string): boolean {
  common ??= new Set((dictionary["passwords-common"] as string[]).map((p) => p.toLowerCase()));
  return common.has(password.toLowerCase());
}
