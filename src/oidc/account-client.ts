/**
 * Gatehouse's own client for the /account page: first-party, public, and with
 * response_type "none", so signing in to the account page makes a session and
 * issues no code or token.
 */
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
