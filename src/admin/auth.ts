/**
 * Authentication of admin API calls (README, "Admin API"): a Bearer access
 * token that this IdP issued through the client_credentials grant for the
 * admin API resource, still valid, and whose client still exists.
 * Authorization (the scope per route) is separate: see scopes.ts.
 */
import type Provider from "oidc-provider";
import { AppError } from "../errors.ts";
import { adminResourceFor } from "../scopes.ts";

export interface AdminCaller {
  clientId: string;
  scopes: ReadonlySet<string>;
}


/**
 * The caller of an admin API request, from its Authorization header; throws
 * AppError("unauthorized") for anything but a live admin API token. Its scopes
 * are the token's scopes that its client is still allowed (the client's
 * current `scope` metadata), so narrowing a client's scope or deleting the
 * client takes effect on the tokens it already holds, at once (RFC 6749
 * section 3.3: the server may grant less than was asked).
 */
export async function authenticateAdminCall(provider: Provider, issuer: string, authorization: string | undefined): Promise<AdminCaller> {
  // The scheme is case-insensitive (RFC 7235 section 2.1).
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(authorization ?? "");
  if (!match) throw new AppError("unauthorized", "a Bearer access token is required");
  const token = await provider.ClientCredentials.find(match[1]!);
  if (!token || token.isExpired) throw new AppError("unauthorized", "the access token is not active");
  if (token.aud !== adminResourceFor(issuer)) throw new AppError("unauthorized", "the access token is not for the admin API");
  // Sender-constrained tokens would need their proof checked here; refuse them rather than skip it.
  if (token.jkt || token["x5t#S256"]) throw new AppError("unauthorized", "sender-constrained tokens are not accepted by the admin API");
  const clientId = token.clientId;
  const client = clientId ? await provider.Client.find(clientId) : undefined;
  if (!clientId || !client) throw new AppError("unauthorized", "the client of this access token no longer exists");
  const allowed = new Set((client.scope ?? "").split(" "));
  return { clientId, scopes: new Set((token.scope ?? "").split(" ").filter((s) => s && allowed.has(s))) };
}
