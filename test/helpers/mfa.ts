/** Two-step verification fixtures: an authenticator app turned on through the services users call, and its codes. */
import type { Database } from "../../src/db/database.ts";
import type { MasterKeyRing } from "../../src/crypto/master-keys.ts";
import { confirmTotpSetup, startTotpSetup } from "../../src/services/mfa.ts";
import { totpCode, totpPeriod, totpStep } from "../../src/auth/totp.ts";
import type { TestUser } from "./http-flow.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The current time step, after waiting out the last `marginMs` of a step, so
 * that codes computed now for steps step-1..step+1 stay inside the window
 * while the test uses them.
 */
export async function freshStep(marginMs = 4_000): Promise<number> {
  const intoStep = Date.now() % (totpPeriod * 1000);
  if (totpPeriod * 1000 - intoStep < marginMs) await sleep(totpPeriod * 1000 - intoStep + 50);
  return totpStep();
}

export interface TotpFixture {
  secret: string;
  recoveryCodes: string[];
  /** The code for `step` (RFC 6238). */
  code(step: number): string;
}

/**
 * Sets up and turns on an authenticator app for `user`, confirming with the
 * code of the previous step (inside the one-step window), so that the
 * current and the next step's codes remain usable for the test.
 */
export async function turnOnTotp(running: { db: Database; ring: MasterKeyRing; config: { issuer: string } }, user: Pick<TestUser, "id" | "email">): Promise<TotpFixture> {
  const setup = await startTotpSetup(running.db, running.ring, user, running.config.issuer);
  const step = await freshStep();
  const codes = await confirmTotpSetup(running.db, running.ring, user.id, totpCode(setup.secret, step - 1), { actorType: "user", actorId: user.id });
  if (!codes) throw new Error("the first code did not confirm the authenticator app");
  return { secret: setup.secret, recoveryCodes: codes, code: (s) => totpCode(setup.secret, s) };
}

/** The Base32 key shown by the set-up page. */
export function shownSecret(html: string): string {
  const match = /<code id="totp-secret">([A-Z2-7]+)<\/code>/.exec(html);
  if (!match) throw new Error(`no TOTP key in the page: ${html.slice(0, 300)}`);
  return match[1]!;
}

/** The recovery codes shown by the recovery codes page. */
export function shownRecoveryCodes(html: string): string[] {
  return [...html.matchAll(/<li><code>([a-z2-7-]+)<\/code><\/li>/g)].map((m) => m[1]!);
}

export const isSecondFactorPage = (html: string) => html.includes('id="second-factor-form"');
export const isTotpSetupPage = (html: string) => html.includes('id="totp-secret"');
