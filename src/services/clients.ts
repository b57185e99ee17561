/**
 * Creating and listing OAuth clients: one place for the rules, called by the
 * CLI and the admin API alike (SPEC section 7).
 */
import { randomBytes } from "node:crypto";
import type { Database } from "../db/database.ts";
import { insertClient, listClientRows, type ClientRow } from "../db/clients.ts";
import type { MasterKeyRing } from "../crypto/master-keys.ts";
import { AppError } from "../errors.ts";

export const supportedGrantTypes = ["authorization_code", "refresh_token", "client_credentials"] as const;
export type GrantType = (typeof supportedGrantTypes)[number];

/** Scopes a client may be allowed. */
export const supportedScopes = [
  "openid",
  "profile",
  "email",
  "offline_access",
  "roles",
  "admin:read",
  "admin:revoke",
  "admin:write",
] as const;

export interface CreateClientInput {
  name: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  public?: boolean;
  grantTypes?: string[];
  scope?: string;
  firstParty?: boolean;
}

export interface CreatedClient {
  client_id: string;
  client_secret?: string;
}

export interface ClientView {
  client_id: string;
  client_name: string;
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  grant_types: string[];
  scope: string;
  token_endpoint_auth_method: string;
  first_party: boolean;
  created_at: string;
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "127.0.0.1" || hostname === "[::1]";
}

/**
 * A redirect URI must be absolute, without a fragment, and https, or http on a
 * loopback host (RFC 8252 section 7.3), or a private-use scheme with a dot
 * (RFC 8252 section 7.1, reverse domain name) for native apps.
 */
export function validateRedirectUri(uri: string, field = "redirect_uri"): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new AppError("invalid_redirect_uri", `${field} ${JSON.stringify(uri)} is not an absolute URL`);
  }
  if (url.hash || uri.includes("#")) throw new AppError("invalid_redirect_uri", `${field} ${JSON.stringify(uri)} must not have a fragment`);
  if (url.username || url.password) throw new AppError("invalid_redirect_uri", `${field} ${JSON.stringify(uri)} must not carry credentials`);
  const scheme = url.protocol.slice(0, -1);
  const ok =
    scheme === "https" ||
    (scheme === "http" && isLoopback(url.hostname)) ||
    (scheme.includes(".") && !["javascript", "data", "file", "vbscript"].includes(scheme));
  if (!ok) {
    throw new AppError(
      "invalid_redirect_uri",
      `${field} ${JSON.stringify(uri)} must use https (http only on localhost, or a private-use scheme such as com.example.app:)`,
    );
  }
  return uri;
}

function parseScope(scope: string): string[] {
  const scopes = scope.split(/\s+/).filter(Boolean);
  const unknown = scopes.filter((s) => !(supportedScopes as readonly string[]).includes(s));
  if (unknown.length) throw new AppError("invalid_client_metadata", `unknown scope: ${unknown.join(", ")}`);
  return [...new Set(scopes)];
}

/** Builds oidc-provider registration metadata from the input, or throws AppError. */
export function buildClientMetadata(input: CreateClientInput): Record<string, unknown> & { client_name: string } {
  const name = input.name?.trim();
  if (!name || name.length > 200) throw new AppError("invalid_client_metadata", "name must be 1 to 200 characters");
  const grantTypes = [...new Set(input.grantTypes ?? ["authorization_code", "refresh_token"])];
  const unknownGrant = grantTypes.filter((g) => !(supportedGrantTypes as readonly string[]).includes(g));
  if (unknownGrant.length || grantTypes.length === 0) {
    throw new AppError("invalid_client_metadata", `grant types must be among ${supportedGrantTypes.join(", ")}`);
  }
  if (input.public && grantTypes.includes("client_credentials")) {
    throw new AppError("invalid_client_metadata", "a public client cannot use client_credentials");
  }
  const redirectUris = (input.redirectUris ?? []).map((u) => validateRedirectUri(u));
  const postLogoutRedirectUris = (input.postLogoutRedirectUris ?? []).map((u) => validateRedirectUri(u, "post_logout_redirect_uri"));
  const usesCode = grantTypes.includes("authorization_code");
  if (usesCode && redirectUris.length === 0) {
    throw new AppError("invalid_client_metadata", "the authorization_code grant needs at least one redirect URI");
  }
  if (grantTypes.includes("refresh_token") && !usesCode) {
    throw new AppError("invalid_client_metadata", "refresh_token needs the authorization_code grant");
  }
  const defaultScope = usesCode ? "openid profile email offline_access" : "";
  const scope = parseScope(input.scope ?? defaultScope).join(" ");
  return {
    client_name: name,
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris,
    grant_types: grantTypes,
    response_types: usesCode ? ["code"] : [],
    scope,
    token_endpoint_auth_method: input.public ? "none" : "client_secret_basic",
  };
}

/**
 * Creates a client. The secret is 256 random bits, returned once and stored
 * sealed with the master key (never hashed: a slow hash would cap client
 * authentication at the token endpoint).
 */
export async function createClient(db: Database, ring: MasterKeyRing, input: CreateClientInput): Promise<CreatedClient> {
  const metadata = buildClientMetadata(input);
  const clientId = randomBytes(16).toString("base64url");
  const secret = input.public ? undefined : randomBytes(32).toString("base64url");
  await insertClient(db.prisma, {
    id: clientId,
    name: metadata.client_name,
    secretEncrypted: secret ? await ring.encrypt(secret) : null,
    metadata,
    firstParty: input.firstParty ?? false,
  });
  return secret ? { client_id: clientId, client_secret: secret } : { client_id: clientId };
}

export function toClientView(row: ClientRow): ClientView {
  const m = row.metadata as Record<string, unknown>;
  return {
    client_id: row.id,
    client_name: row.name,
    redirect_uris: (m.redirect_uris as string[]) ?? [],
    post_logout_redirect_uris: (m.post_logout_redirect_uris as string[]) ?? [],
    grant_types: (m.grant_types as string[]) ?? [],
    scope: (m.scope as string) ?? "",
    token_endpoint_auth_method: (m.token_endpoint_auth_method as string) ?? "client_secret_basic",
    first_party: row.firstParty,
    created_at: row.createdAt.toISOString(),
  };
}

/** Every client, oldest first, without secrets. */
export async function listClients(db: Database): Promise<ClientView[]> {
  return (await listClientRows(db.prisma)).map(toClientView);
}
