/**
 * What Gatehouse supports of the protocol: one vocabulary, read by the
 * oidc-provider configuration (and so by discovery), by client registration
 * (CLI and admin API) and by the docs' support table. Discovery must list
 * exactly what can be registered and works (RFC 8414 section 2).
 */

/**
 * Client authentication methods, the same at the token, introspection and
 * revocation endpoints. No client_secret_jwt: Gatehouse stores client secrets
 * sealed for HTTP Basic/POST comparison and offers no way to register it.
 */
export const clientAuthMethods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"] as const;
export type ClientAuthMethod = (typeof clientAuthMethods)[number];

/**
 * Algorithms of the ID tokens (and signed introspection responses) Gatehouse
 * signs, one per key type of its key set. RS256 is the default: OpenID Connect
 * Dynamic Client Registration 1.0 section 2 makes it the default of
 * id_token_signed_response_alg, and Core section 15.1 requires every OP to
 * support it, so relying-party libraries assume it.
 */
export const tokenSigningAlgs = ["RS256", "ES256", "EdDSA"] as const;
export type TokenSigningAlg = (typeof tokenSigningAlgs)[number];
export const defaultTokenSigningAlg: TokenSigningAlg = "RS256";

/** Algorithms accepted for private_key_jwt client assertions (RFC 7523). */
export const clientAssertionSigningAlgs = ["RS256", "PS256", "ES256", "Ed25519", "EdDSA"] as const;

/** Algorithms accepted for DPoP proofs (RFC 9449). */
export const dpopSigningAlgs = ["ES256", "Ed25519", "EdDSA"] as const;

/*
 * How a user signed in, as the ID token says it (docs/two-step-verification.md):
 * `amr` values from RFC 8176, and the two `acr` values discovery advertises
 * (acr_values_supported).
 */
/** `acr` (OpenID Connect Core 1.0 section 2) of a sign-in with two factors. */
export const mfaAcr = "urn:gatehouse:mfa";
/** `acr` of a sign-in with one factor (a password, or a passkey without user verification). */
export const singleFactorAcr = "urn:gatehouse:sfa";

/** The acr that an amr (RFC 8176) amounts to. */
export function acrOf(amr: readonly string[]): string {
  return amr.includes("mfa") ? mfaAcr : singleFactorAcr;
}

/** The amr after a second factor (`otp`) on top of `first`: "mfa" added (RFC 8176 section 2). */
export function withSecondFactor(first: readonly string[]): string[] {
  return [...new Set([...first.filter((m) => m !== "mfa"), "otp", "mfa"])];
}
