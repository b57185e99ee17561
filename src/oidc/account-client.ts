/**
 * Gatehouse's own client for the /account page: first-party, public, and with
 * response_type "none", so signing in to the account page makes a session and
 * issues no code or token.
 */
import { randomBytes } from "node:crypto";
import type { ClientMetadata } from "oidc-provider";

export const accountClientId = "gatehouse-account";

export function accountClient(issuer: string): ClientMetadata {
  return {
    client_id: accountClientId,
    client_name: "Your Gatehouse account",
    token_endpoint_auth_method: "none",
    redirect_uris: [`${issuer}/account`],
    response_types: ["none"],
    grant_types: [],
    scope: "openid",
    first_party: true,
  };
}

/**
 * The authorization request that signs a browser in to /account through the
 * account client. `prompt: "login"` asks for a sign-in even with a session
 * (OpenID Connect Core 1.0 section 3.1.2.1), with `loginHint` filled in.
 */
export function accountSignInUrl(issuer: string, options: { prompt?: "login"; loginHint?: string } = {}): string {
  const url = new URL("/auth", issuer);
  url.search = new URLSearchParams({
    client_id: accountClientId,
    response_type: "none",
    scope: "openid",
    redirect_uri: `${issuer}/account`,
    state: randomBytes(12).toString("base64url"),
    ...(options.prompt && { prompt: options.prompt }),
    ...(options.loginHint && { login_hint: options.loginHint }),
  }).toString();
  return url.href;
}
