/**
 * The scope vocabulary, in one leaf module imported by the layers above
 * (oidc/, admin/, services/, interaction/): the OpenID Connect scopes and the
 * claims each releases, the admin API's scopes and its resource indicator,
 * and the texts the consent page shows. It imports nothing of Gatehouse.
 */

/** OpenID Connect scopes (OpenID Connect Core 1.0 section 5.4), plus `roles`. */
export const oidcScopes = ["openid", "profile", "email", "offline_access", "roles"] as const;

/** Claims released per scope; `role` needs the `roles` scope. */
export const claimsByScope = {
  openid: ["sub"],
  email: ["email", "email_verified"],
  profile: ["name"],
  roles: ["role"],
} as const;

/** The admin API's scopes (README, "Admin API"). */
export const adminScopes = ["admin:read", "admin:revoke", "admin:write"] as const;
export type AdminScope = (typeof adminScopes)[number];

/**
 * Scopes oidc-provider knows at construction (its `scopes` configuration):
 * the OpenID Connect ones and the admin API's. Scopes of registered resource
 * servers are not among them: they come from the ResourceServer table.
 */
export const builtInScopes = [...oidcScopes, ...adminScopes] as const;

/** The admin API's resource indicator (RFC 8707): the audience of its tokens. */
export function adminResourceFor(issuer: string): string {
  return `${issuer}/admin/v1`;
}

/** The id under which the built-in admin API resource server is listed. */
export const adminResourceId = "admin";

/** What each built-in scope lets the application do, as the consent page says it. */
export const scopeDescriptions: Readonly<Record<string, string>> = {
  openid: "know who you are (your account identifier)",
  profile: "see your name",
  email: "see your email address",
  roles: "see your role",
  offline_access: "stay signed in and access your data while you are away",
  "admin:read": "read Gatehouse's users, clients and audit log",
  "admin:revoke": "revoke sessions and grants in Gatehouse",
  "admin:write": "change Gatehouse's users, clients and resource servers",
};

/**
 * The longest access token lifetime a resource server may have (seconds).
 * Signing keys stay published this long after retirement at least, so that
 * every JWT access token a key signed can still be verified until it expires
 * (services/signing-keys.ts, keyRetention).
 */
export const maxResourceAccessTokenTtl = 86_400;
