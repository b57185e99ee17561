/**
 * The one oidc-provider configuration object (STYLE.md). createProvider() is
 * pure construction from configuration and a key set: when the key set
 * changes, a new provider is built and swapped in (see provider-host.ts).
 * Protocol features are oidc-provider's own, switched on here (SPEC section 5).
 */
import Provider, { errors, interactionPolicy, type Configuration, type KoaContextWithOIDC } from "oidc-provider";
import type { JWK } from "jose";
import type { Config } from "../config.ts";
import type { PrismaClient } from "../db/database.ts";
import { createAdapterFactory } from "./adapter.ts";
import { claimsByScope, createFindAccount } from "./account.ts";
import type { ClientStore } from "./client-store.ts";
import type { StoredIds } from "../crypto/stored-ids.ts";
import { supportedScopes } from "../services/clients.ts";
import { renderErrorPage, renderPage } from "../views.ts";
import { accountClient } from "./account-client.ts";
import { adminResourceFor } from "../admin/auth.ts";

const adminScopes = ["admin:read", "admin:revoke", "admin:write"];

/**
 * oidc-provider's prompts, plus one login check: a session whose account is
 * gone (user disabled or deleted) must sign in again, rather than reach the
 * consent checks without an account.
 */
function createInteractionPolicy() {
  const policy = interactionPolicy.base();
  const login = policy.get("login")!;
  login.checks.add(
    new interactionPolicy.Check("account_unavailable", "End-User authentication is required", (ctx) =>
      ctx.oidc.session?.accountId && !ctx.oidc.account ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT,
    ),
    0,
  );
  return policy;
}

export interface ProviderDeps {
  config: Config;
  prisma: PrismaClient;
  clients: ClientStore;
  /** Keys the stored ids of tokens, codes and sessions (storedIdsFor(ring)). */
  storedIds: StoredIds;
  /** Private JWKs: current keys first (see keys.ts). */
  keys: JWK[];
  cookieKeys: string[];
}

function requestIdOf(ctx: KoaContextWithOIDC): string {
  return String(ctx.res.getHeader("x-request-id") ?? "");
}

export function createProvider({ config, prisma, clients, storedIds, keys, cookieKeys }: ProviderDeps): Provider {
  const secure = config.issuer.startsWith("https:");
  const findAccount = createFindAccount(prisma);
  const cookie = { httpOnly: true, sameSite: "lax" as const, secure, signed: true };
  const configuration: Configuration = {
    adapter: createAdapterFactory(prisma, clients, storedIds, config.refreshReuseGrace),
    clients: [accountClient(config.issuer)],
    // The authorization code flow; "none" only for the account page's own client.
    responseTypes: ["code", "none"],
    findAccount,
    jwks: { keys: keys as NonNullable<Configuration["jwks"]>["keys"] },
    cookies: { keys: cookieKeys, long: cookie, short: cookie },
    claims: { ...claimsByScope } as unknown as Configuration["claims"],
    scopes: [...supportedScopes],
    // Scope claims (email, name, role) go in the ID token too, not only userinfo.
    conformIdTokenClaims: false,
    // A request must name its redirect_uri, even when only one is registered.
    allowOmittingSingleRegisteredRedirectUri: false,
    clientDefaults: {
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "ES256",
      introspection_signed_response_alg: "ES256",
    },
    extraClientMetadata: { properties: ["first_party"] },
    // PKCE (S256, the only method oidc-provider 9 accepts) for every client.
    pkce: { required: () => true },
    // Refresh tokens only with offline_access (oidc-provider's default rule),
    // rotated on every use; a rotated-out token presented again revokes the grant.
    rotateRefreshToken: true,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Tokens of a disabled or deleted user introspect as inactive even before
        // they are revoked (disabling revokes them too: this is the second line).
        async allowedPolicy(ctx, client, token) {
          if (client.clientAuthMethod === "none" && token.clientId !== client.clientId) return false;
          const accountId = "accountId" in token ? token.accountId : undefined;
          if (!accountId) return true;
          return (await findAccount(ctx, accountId)) !== undefined;
        },
      },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      // RFC 9701: introspection answers as a signed JWT when asked with
      // Accept: application/token-introspection+jwt.
      jwtIntrospection: { enabled: true },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      dPoP: { enabled: true },
      // The admin API is a resource server: tokens for the admin:* scopes are
      // issued for it (audience ISSUER/admin/v1) without a resource parameter.
      // Opaque, so that deleting the row revokes them at once.
      resourceIndicators: {
        enabled: true,
        defaultResource(ctx) {
          const requested = String(ctx.oidc.params?.scope ?? "").split(" ");
          return requested.some((s) => adminScopes.includes(s)) ? adminResourceFor(config.issuer) : undefined;
        },
        useGrantedResource: () => true,
        getResourceServerInfo(_ctx, resourceIndicator, client) {
          if (resourceIndicator !== adminResourceFor(config.issuer)) throw new errors.InvalidTarget();
          const allowed = new Set((client.scope ?? "").split(" "));
          return {
            scope: adminScopes.filter((s) => allowed.has(s)).join(" "),
            audience: resourceIndicator,
            accessTokenTTL: config.accessTokenTtl,
            accessTokenFormat: "opaque",
          };
        },
      },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.type = "html";
          ctx.body = renderPage("sign-out", { form, host: ctx.host, clientName: ctx.oidc.client?.clientName });
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = "html";
          ctx.body = renderPage("signed-out", { clientName: ctx.oidc.client?.clientName });
        },
      },
    },
    // oidc-provider's outgoing requests go through an SSRF-protected dispatcher
    // that refuses loopback and private addresses; OUTBOUND_ALLOW_PRIVATE lifts it
    // for relying parties on an internal network.
    fetch: (url, options) => {
      if (config.outboundAllowPrivate) delete (options as { dispatcher?: unknown }).dispatcher;
      return fetch(url, options);
    },
    interactions: { policy: createInteractionPolicy(), url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // An error page without details of unexpected errors: oidc-provider puts
    // only OAuth error codes and descriptions in `out`; server errors are
    // logged through its server_error event (see events.ts).
    async renderError(ctx, out) {
      ctx.type = "html";
      ctx.set("cache-control", "no-store");
      const message = out.error_description ?? out.error ?? "The request could not be completed.";
      ctx.body = renderErrorPage("Sign-in error", String(message), requestIdOf(ctx));
    },
    ttl: {
      AccessToken: config.accessTokenTtl,
      ClientCredentials: config.accessTokenTtl,
      IdToken: config.idTokenTtl,
      // Absolute: rotation never extends a refresh token past its first expiry.
      RefreshToken(ctx) {
        const rotated = ctx?.oidc?.entities.RotatedRefreshToken;
        return rotated ? rotated.remainingTTL : config.refreshTokenTtl;
      },
      Session: config.sessionTtl,
      Grant: Math.max(config.sessionTtl, config.refreshTokenTtl),
      AuthorizationCode: 60,
      Interaction: 3600,
    },
  };
  const provider = new Provider(config.issuer, configuration);
  // X-Forwarded-* reaching the provider are rewritten from Fastify's view of
  // the request, which applies TRUST_PROXY (see plugins/oidc.ts).
  provider.proxy = true;
  return provider;
}
