/**
 * Helpers for the signing key tests: relying parties that hold a refresh
 * token and ask any instance for fresh ID tokens (one client per ID token
 * algorithm), the JWKS as an instance serves it, and verification of a JWT
 * against a JWKS the way a relying party does it (jose).
 */
import * as oidc from "openid-client";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from "jose";
import type { Database } from "../../src/db/database.ts";
import type { MasterKeyRing } from "../../src/crypto/master-keys.ts";
import { createClient } from "../../src/services/clients.ts";
import { signingAlgorithms } from "../../src/oidc/keys.ts";
import { Browser, authorizationUrl, redeem, redirectUri, signInAndConsent, type TestClient, type TestUser } from "./http-flow.ts";

export interface Jwks {
  keys: (JWK & { kid: string; key_ops?: string[] })[];
}

/** GET /jwks on `base`: the keys and the Cache-Control header. */
export async function fetchJwks(base: string): Promise<Jwks & { cacheControl: string | null }> {
  const res = await fetch(`${base}/jwks`);
  if (res.status !== 200) throw new Error(`GET ${base}/jwks: ${res.status}`);
  return { ...((await res.json()) as Jwks), cacheControl: res.headers.get("cache-control") };
}

/** Whether `jwt` verifies against `jwks` (signature, issuer), as a relying party checks it. */
export async function verifiesWith(jwt: string, jwks: Jwks, issuer: string): Promise<boolean> {
  try {
    await jwtVerify(jwt, createLocalJWKSet(jwks), { issuer });
    return true;
  } catch {
    return false;
  }
}

export const kidOf = (jwt: string) => String(decodeProtectedHeader(jwt).kid);

/** Polls `check` every 100 ms until it returns a value other than undefined; throws after `ms`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The kid of the current key of each algorithm, from the database. */
export async function currentKids(db: Database): Promise<Record<string, string>> {
  const rows = await db.prisma.signingKey.findMany({ where: { state: "current" } });
  return Object.fromEntries(rows.map((r) => [r.alg, r.kid]));
}

/** A relying party with a refresh token, whose ID tokens are signed with `alg`. */
export interface TokenHolder {
  alg: string;
  client: TestClient;
  refreshToken: string;
}

/**
 * One first-party client per ID token algorithm (RS256, ES256, EdDSA), each
 * signed in once through `issuer` (a code flow with openid-client) with
 * offline_access, so that it holds a refresh token.
 */
export async function makeTokenHolders(db: Database, ring: MasterKeyRing, issuer: string, user: TestUser): Promise<TokenHolder[]> {
  const holders: TokenHolder[] = [];
  for (const alg of signingAlgorithms) {
    const scope = "openid email offline_access";
    const created = await createClient(db, ring, { name: `RP ${alg}`, redirectUris: [redirectUri], scope, firstParty: true, idTokenSignedResponseAlg: alg });
    const secret = created.client_secret!;
    const config = await oidc.discovery(new URL(issuer), created.client_id, { client_secret: secret, id_token_signed_response_alg: alg }, oidc.ClientSecretBasic(secret), {
      execute: [oidc.allowInsecureRequests],
    });
    const client = { clientId: created.client_id, clientSecret: secret, config };
    const pending = await authorizationUrl(client, { scope });
    const tokens = await redeem(client, await signInAndConsent(new Browser(issuer), pending, user), pending);
    if (!tokens.refresh_token) throw new Error(`no refresh token for the ${alg} client`);
    holders.push({ alg, client, refreshToken: tokens.refresh_token });
  }
  return holders;
}

export interface TokenAnswer {
  status: number;
  json: Record<string, unknown>;
}

/** A refresh_token grant sent to `base` (an instance, or the balancer); keeps the rotated refresh token. */
export async function refresh(base: string, holder: TokenHolder): Promise<TokenAnswer> {
  const res = await fetch(`${base}/token`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(holder.client.clientId)}:${encodeURIComponent(holder.client.clientSecret)}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: holder.refreshToken }),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (res.status === 200 && typeof json.refresh_token === "string") holder.refreshToken = json.refresh_token;
  return { status: res.status, json };
}

/** A fresh ID token from `base` for `holder`; throws on any answer but 200 with an id_token. */
export async function idTokenFrom(base: string, holder: TokenHolder): Promise<string> {
  const answer = await refresh(base, holder);
  if (answer.status !== 200 || typeof answer.json.id_token !== "string") {
    throw new Error(`refresh on ${base} for ${holder.alg}: ${answer.status} ${JSON.stringify(answer.json)}`);
  }
  return answer.json.id_token;
}
