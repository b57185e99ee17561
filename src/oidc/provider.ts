/**
 * The one oidc-provider configuration object (STYLE.md). createProvider() is
 * pure construction from configuration and a key set: when the key set
 * changes, a new provider is built and swapped in (see provider-host.ts).
 * Protocol features are oidc-provider's own, switched on here (docs/integrating.md lists what is enabled).
 */
import type { IncomingMessage } from "node:http";
import Provider, { interactionPolicy, type Configuration, type KoaContextWithOIDC } from "oidc-provider";
import type { JWK } from "jose";
import type { Config } from "../config.ts";
import type { Database } from "../db/database.ts";
import { createAdapterFactory } from "./adapter.ts";
import { claimsByScope, createFindAccount } from "./account.ts";
import type { ClientStore } from "./client-store.ts";
import type { StoredIds } from "../crypto/stored-ids.ts";
import { renderErrorPage, renderPage } from "../views.ts";
import { accountClient } from "./account-client.ts";
import { builtInScopes } from "../scopes.ts";
import { audienceStillRegistered, introspectionClientsOf, resourceIndicatorsFeature } from "./resource-indicators.ts";
import { clientAssertionSigningAlgs, clientAuthMethods, defaultTokenSigningAlg, dpopSigningAlgs, mfaAcr, singleFactorAcr, tokenSigningAlgs } from "../protocol.ts";
import { processOfflineAccessByConsentPolicy } from "./offline-access.ts";
import { refetchClientKeysOnFailure } from "./client-keys.ts";
import { deviceConfirmationCheck, deviceFlowFeature, deviceGrantNotAllowedAsUnauthorizedClient, markAcceptedUserCode } from "./device-flow.ts";

/**
 * oidc-provider's prompts, plus one login check: a session whose account is
 * gone (user disabled or deleted) must sign in again, rather than reach the
 * consent checks without an account; and one consent check: every device
 * sign-in is confirmed (oidc/device-flow.ts).
 */
function createInteractionPolicy(mfa: Config["mfa"]) {
  const policy = interactionPolicy.base();
  const login = policy.get("login")!;
  // Two factors when the client asks with acr_values=urn:gatehouse:mfa
  // (OpenID Connect Core 1.0 section 3.1.2.1: Gatehouse honours this voluntary
  // request) or MFA=required: a session signed in with one factor signs in
  // again with a second (interaction/second-factor.ts asks only for the missing one).
  login.checks.add(
    new interactionPolicy.Check(mfaRequiredReason, "Two-step verification is required", (ctx) => {
      if (!ctx.oidc.session?.accountId || ctx.oidc.acr === mfaAcr) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const asked = String(ctx.oidc.params?.acr_values ?? "").split(" ").includes(mfaAcr);
      return asked || mfa === "required" ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }),
  );
  login.checks.add(
    new interactionPolicy.Check("account_unavailable", "End-User authentication is required", (ctx) =>
      ctx.oidc.session?.accountId && !ctx.oidc.account ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT,
    ),
    0,
  );
  policy.get("consent")!.checks.add(deviceConfirmationCheck());
  return policy;
}

/** The login prompt's reason when only the second factor is missing. */
export const mfaRequiredReason = "mfa_required";

const authenticatedClient = Symbol("gatehouse.authenticatedClient");

/** The endpoints that authenticate clients (oidc-provider's route names). */
const clientAuthenticatingRoutes = new Set(["token", "introspection", "revocation", "pushed_authorization_request"]);

/**
 * Errors that oidc-provider can raise after it has looked the named client up
 * (ctx.oidc.client is then set) but before its authentication succeeded
 * (lib/shared/client_auth.js: invalid_client, and invalid_request for
 * conflicting mechanisms). A request that ends in one of them never counts
 * as authenticated; server_error is in doubt, so it does not either.
 */
const unauthenticatedErrors = new Set(["invalid_client", "invalid_request", "server_error"]);

/**
 * koa middleware (provider.use) that marks the raw request with the client
 * whose authentication succeeded, once the endpoint has answered. A public
 * client (auth method "none") proves nothing: anyone may send its client_id.
 */
async function markAuthenticatedClient(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  // ctx.oidc exists only on oidc-provider's own routes.
  const oidc = (ctx as Partial<KoaContextWithOIDC>).oidc;
  const client = oidc && clientAuthenticatingRoutes.has(oidc.route) ? oidc.client : undefined;
  if (!client || client.clientAuthMethod === "none") return;
  if (ctx.status >= 400) {
    const body = ctx.body as { error?: unknown } | undefined;
    // An HTML error page (Accept: text/html) does not say which error: in doubt, not counted.
    if (typeof body !== "object" || body === null || unauthenticatedErrors.has(String(body.error))) return;
  }
  (ctx.req as IncomingMessage & { [authenticatedClient]?: string })[authenticatedClient] = client.clientId;
}

/**
 * The client_id whose client authentication succeeded on this request, once
 * oidc-provider has answered it; undefined when it failed or there was none.
 * For limits that must not be spent by anyone who merely names a client
 * (RFC 6749 section 2.3: the client_id alone is not a credential).
 */
export function authenticatedClientOf(req: IncomingMessage): string | undefined {
  return (req as IncomingMessage & { [authenticatedClient]?: string })[authenticatedClient];
}

export interface ProviderDeps {
  config: Config;
  db: Database;
  clients: ClientStore;
  /** Keys the stored ids of tokens, codes and sessions (storedIdsFor(ring)). */
  storedIds: StoredIds;
  /** Private JWKs: current keys first (see keys.ts). */
  keys: JWK[];
  cookieKeys: string[];
}

/** A logout error says what was received, so that an integrator can see the mismatch. */
function signOutErrorMessage(message: string, received: unknown): string {
  if (typeof received !== "string" || !/post_logout_redirect_uri/.test(message)) return message;
  return `${message}: received ${JSON.stringify(received.slice(0, 500))}, which is not among the client's registered post_logout_redirect_uris.`;
}

function requestIdOf(ctx: KoaContextWithOIDC): string {
  return String(ctx.res.getHeader("x-request-id") ?? "");
}

export function createProvider({ config, db, clients, storedIds, keys, cookieKeys }: ProviderDeps): Provider {
  const secure = config.issuer.startsWith("https:");
  const findAccount = createFindAccount(db);
  const settings = { issuer: config.issuer, accessTokenTtl: config.accessTokenTtl };
  const cookie = { httpOnly: true, sameSite: "lax" as const, secure, signed: true };
  const configuration: Configuration = {
    adapter: createAdapterFactory(db, clients, storedIds, config.refreshReuseGrace),
    clients: [accountClient(config.issuer)],
    // The authorization code flow; "none" only for the account page's own client.
    responseTypes: ["code", "none"],
    findAccount,
    jwks: { keys: keys as NonNullable<Configuration["jwks"]>["keys"] },
    // On https the session cookie is __Host-session: browsers take a __Host-
    // cookie only with Secure, Path=/ (oidc-provider sets the session cookie
    // at /) and no Domain, so neither a sibling subdomain nor plain http can
    // plant or overwrite it (RFC 6265bis section 4.1.3.2). The interaction
    // cookies are scoped to their own paths, which the prefix forbids.
    cookies: {
      keys: cookieKeys,
      long: cookie,
      short: cookie,
      ...(secure && { names: { session: "__Host-session", interaction: "_interaction", resume: "_interaction_resume" } }),
    },
    // What the ID token's acr can say (services/mfa.ts, docs/two-step-verification.md).
    acrValues: [singleFactorAcr, mfaAcr],
    // acr and amr (how the user signed in) in every ID token: oidc-provider
    // puts a claim in it only when a granted scope names it (or the request
    // asks for it), so the openid scope names them. findAccount does not
    // return them, so userinfo never carries them.
    claims: { ...claimsByScope, openid: [...claimsByScope.openid, "acr", "amr"] } as unknown as Configuration["claims"],
    scopes: [...builtInScopes],
    // Scope claims (email, name, role) go in the ID token too, not only userinfo.
    conformIdTokenClaims: false,
    // A request must name its redirect_uri, even when only one is registered.
    allowOmittingSingleRegisteredRedirectUri: false,
    clientDefaults: {
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: defaultTokenSigningAlg,
      introspection_signed_response_alg: defaultTokenSigningAlg,
    },
    // What discovery advertises is exactly what can be registered and works (src/protocol.ts).
    clientAuthMethods: [...clientAuthMethods],
    enabledJWA: {
      idTokenSigningAlgValues: [...tokenSigningAlgs],
      introspectionSigningAlgValues: [...tokenSigningAlgs],
      clientAuthSigningAlgValues: [...clientAssertionSigningAlgs],
      dPoPSigningAlgValues: [...dpopSigningAlgs],
    },
    // The introspection and revocation endpoints authenticate clients like the
    // token endpoint; without these RFC 8414 says client_secret_basic only.
    discovery: {
      introspection_endpoint_auth_methods_supported: [...clientAuthMethods],
      introspection_endpoint_auth_signing_alg_values_supported: [...clientAssertionSigningAlgs],
      revocation_endpoint_auth_methods_supported: [...clientAuthMethods],
      revocation_endpoint_auth_signing_alg_values_supported: [...clientAssertionSigningAlgs],
    },
    // first_party skips the consent page; resource_scope holds the scopes of
    // registered resource servers a client is allowed (oidc/client-store.ts).
    extraClientMetadata: { properties: ["first_party", "resource_scope"] },
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
        // Only the token's own client and its resource servers'
        // introspection clients learn anything about it; anyone else is
        // answered `active: false`, as for an unknown token (RFC 7662
        // section 2.2). Tokens of a disabled or deleted user, or for a
        // deleted resource server, introspect as inactive even before they
        // are revoked (both revoke them too: this is the second line).
        async allowedPolicy(ctx, client, token) {
          if (token.clientId !== client.clientId && !(await introspectionClientsOf(db, settings, token)).has(client.clientId)) return false;
          if (!(await audienceStillRegistered(db, settings, token))) return false;
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
      // Resource servers (RFC 8707): the admin API (audience ISSUER/admin/v1,
      // the default resource for the admin:* scopes) and the registered APIs,
      // with opaque or RFC 9068 JWT access tokens (oidc/resource-indicators.ts).
      resourceIndicators: resourceIndicatorsFeature(db, settings),
      // RFC 8628, for clients registered with its grant type (others get
      // unauthorized_client at /device/auth): /device/auth, and the
      // verification page /device with our views (oidc/device-flow.ts).
      deviceFlow: deviceFlowFeature(),
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.type = "html";
          // The issuer's host, not the request's Host header.
          ctx.body = renderPage("sign-out", { form, host: new URL(config.issuer).host, clientName: ctx.oidc.client?.clientName });
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
    interactions: { policy: createInteractionPolicy(config.mfa), url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // An error page without details of unexpected errors: oidc-provider puts
    // only OAuth error codes and descriptions in `out`; server errors are
    // logged through its server_error event (see events.ts).
    async renderError(ctx, out) {
      ctx.type = "html";
      ctx.set("cache-control", "no-store");
      const message = String(out.error_description ?? out.error ?? "The request could not be completed.");
      ctx.body = ctx.oidc?.route?.startsWith("end_session")
        ? renderErrorPage("Sign-out error", signOutErrorMessage(message, ctx.oidc.params?.post_logout_redirect_uri), requestIdOf(ctx))
        : renderErrorPage("Sign-in error", message, requestIdOf(ctx));
    },
    ttl: {
      // A resource server's own access_token_ttl, else ACCESS_TOKEN_TTL.
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.accessTokenTtl,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? config.accessTokenTtl,
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
      // RFC 8628 section 3.2's expires_in: ten minutes to enter the code and sign in.
      DeviceCode: 600,
    },
  };
  const provider = new Provider(config.issuer, configuration);
  processOfflineAccessByConsentPolicy(provider);
  refetchClientKeysOnFailure(provider);
  // X-Forwarded-* reaching the provider are pinned to the issuer (host,
  // protocol) and to Fastify's view of the client address, which applies
  // TRUST_PROXY (see issuerHeadersPlugin in plugins/oidc.ts).
  provider.proxy = true;
  provider.use(markAuthenticatedClient);
  provider.use(markAcceptedUserCode);
  provider.use(deviceGrantNotAllowedAsUnauthorizedClient);
  return provider;
}
