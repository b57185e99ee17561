/**
 * The one oidc-provider configuration object (STYLE.md). createProvider() is
 * pure construction from configuration and a key set: when the key set
 * changes, a new provider is built and swapped in (see provider-host.ts).
 */
import Provider, { type Configuration } from "oidc-provider";
import type { JWK } from "jose";
import type { Config } from "../config.ts";
import type { PrismaClient } from "../db/database.ts";
import { createAdapterFactory } from "./adapter.ts";
import { claimsByScope, createFindAccount } from "./account.ts";
import type { ClientStore } from "./client-store.ts";
import { supportedScopes } from "../services/clients.ts";

export interface ProviderDeps {
  config: Config;
  prisma: PrismaClient;
  clients: ClientStore;
  /** Private JWKs: current keys first (see keys.ts). */
  keys: JWK[];
  cookieKeys: string[];
}

export function createProvider({ config, prisma, clients, keys, cookieKeys }: ProviderDeps): Provider {
  const secure = config.issuer.startsWith("https:");
  const configuration: Configuration = {
    adapter: createAdapterFactory(prisma, clients),
    findAccount: createFindAccount(prisma),
    jwks: { keys: keys as Configuration["jwks"] extends { keys: infer K } | undefined ? K : never },
    cookies: {
      keys: cookieKeys,
      long: { httpOnly: true, sameSite: "lax", secure, signed: true },
      short: { httpOnly: true, sameSite: "lax", secure, signed: true },
    },
    claims: { ...claimsByScope } as unknown as Configuration["claims"],
    scopes: [...supportedScopes],
    clientDefaults: {
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "ES256",
      introspection_signed_response_alg: "ES256",
    },
    // PKCE (S256, the only method oidc-provider 9 accepts) for every client.
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      // RFC 9701: introspection answers as a signed JWT when asked with
      // Accept: application/token-introspection+jwt.
      jwtIntrospection: { enabled: true },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: config.accessTokenTtl,
      ClientCredentials: config.accessTokenTtl,
      IdToken: config.idTokenTtl,
      RefreshToken: config.refreshTokenTtl,
      Session: config.sessionTtl,
      Grant: config.refreshTokenTtl,
      AuthorizationCode: 60,
      Interaction: 3600,
    },
  };
  const provider = new Provider(config.issuer, configuration);
  // Behind a TLS proxy, trust X-Forwarded-* only when the operator said so.
  provider.proxy = config.trustProxy !== false;
  return provider;
}
