/**
 * Creating and listing OAuth clients: one place for the rules, called by the
 * CLI and the admin API alike (README, "The gatehouse command"; docs/integrating.md).
 */
import { randomBytes } from "node:crypto";
import { transaction, type Database } from "../db/transaction.ts";
import { noteChanged } from "../db/cache-versions.ts";
import { deleteClientRow, findClientRow, insertClient, listClientRows, updateClientRow, type ClientRow } from "../db/clients.ts";
import { deleteGrantsAndTokens, deleteTokensOfClient } from "../db/revocations.ts";
import type { MasterKeyRing } from "../crypto/master-keys.ts";
import { clientSecretContext } from "../oidc/client-store.ts";
import { AppError } from "../errors.ts";
import { appendAuditEvent } from "./audit.ts";
import { registeredResourceScopes } from "./resource-servers.ts";
import { systemActor, type Actor } from "./actor.ts";
import { builtInScopes } from "../scopes.ts";
import { clientAuthMethods, defaultTokenSigningAlg, tokenSigningAlgs } from "../protocol.ts";

/** RFC 8628's grant type: the device authorization grant, for command-line tools and TVs. */
export const deviceCodeGrantType = "urn:ietf:params:oauth:grant-type:device_code";

export const supportedGrantTypes = ["authorization_code", "refresh_token", "client_credentials", deviceCodeGrantType] as const;
export type GrantType = (typeof supportedGrantTypes)[number];

/** Scopes a client may be allowed besides those of registered resource servers. */
export const supportedScopes = builtInScopes;

/** Client authentication methods (the protocol vocabulary, src/protocol.ts). */
export const authMethods = clientAuthMethods;

/** A public JWK as registered (RFC 7517); private members are refused. */
export type PublicJwk = Record<string, unknown> & { kty: string };

export interface CreateClientInput {
  name: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  /** Shorthand for tokenEndpointAuthMethod "none" (the CLI's --public). */
  public?: boolean;
  tokenEndpointAuthMethod?: string;
  grantTypes?: string[];
  scope?: string;
  firstParty?: boolean;
  backchannelLogoutUri?: string;
  /** For private_key_jwt: where the client publishes its keys (refetched on an unknown kid). */
  jwksUri?: string;
  /** For private_key_jwt: the client's public keys inline (RFC 7591 `jwks`), instead of jwksUri. */
  jwks?: { keys: PublicJwk[] };
  /** RS256 (the default), ES256 or EdDSA. */
  idTokenSignedResponseAlg?: string;
  /** The algorithm of signed introspection responses (RFC 9701): RS256 (the default), ES256 or EdDSA. */
  introspectionSignedResponseAlg?: string;
}

/** Checks the metadata with oidc-provider's own client validation, when a provider is at hand. */
export type MetadataValidator = (metadata: Record<string, unknown>) => Promise<void>;

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
  backchannel_logout_uri: string | null;
  jwks_uri: string | null;
  jwks: { keys: PublicJwk[] } | null;
  id_token_signed_response_alg: string;
  introspection_signed_response_alg: string;
  first_party: boolean;
  created_at: string;
  updated_at: string;
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

function parseScope(scope: string, resourceScopes: ReadonlySet<string>): string[] {
  const scopes = scope.split(/\s+/).filter(Boolean);
  const unknown = scopes.filter((s) => !(supportedScopes as readonly string[]).includes(s) && !resourceScopes.has(s));
  if (unknown.length) throw new AppError("invalid_client_metadata", `unknown scope: ${unknown.join(", ")}`);
  return [...new Set(scopes)];
}

/**
 * Builds oidc-provider registration metadata from the input, or throws
 * AppError. `resourceScopes`: the scopes of the registered resource servers,
 * which a client may be allowed besides the built-in ones.
 */
export function buildClientMetadata(
  input: CreateClientInput,
  resourceScopes: ReadonlySet<string> = new Set(),
): Record<string, unknown> & { client_name: string } {
  const name = input.name?.trim();
  if (!name || name.length > 200 || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new AppError("invalid_client_metadata", "name must be 1 to 200 characters, without control characters");
  }
  const authMethod = input.tokenEndpointAuthMethod ?? (input.public ? "none" : "client_secret_basic");
  if (!(authMethods as readonly string[]).includes(authMethod)) {
    throw new AppError("invalid_client_metadata", `token_endpoint_auth_method must be one of ${authMethods.join(", ")}`);
  }
  if (input.public && authMethod !== "none") throw new AppError("invalid_client_metadata", "a public client authenticates with none");
  const isPublic = authMethod === "none";
  // RFC 7591 section 2: jwks_uri and jwks MUST NOT both be present.
  if (input.jwksUri !== undefined && input.jwks !== undefined) throw new AppError("invalid_client_metadata", "give jwks_uri or jwks, not both");
  if (authMethod === "private_key_jwt" && input.jwksUri === undefined && input.jwks === undefined) {
    throw new AppError("invalid_client_metadata", "private_key_jwt needs the client's public keys: jwks_uri or jwks");
  }
  const jwksUri = input.jwksUri === undefined ? undefined : validateHttpsUrl(input.jwksUri, "jwks_uri");
  const jwks = input.jwks === undefined ? undefined : validatePublicJwks(input.jwks);
  const idTokenAlg = signingAlg(input.idTokenSignedResponseAlg, "id_token_signed_response_alg");
  const introspectionAlg = signingAlg(input.introspectionSignedResponseAlg, "introspection_signed_response_alg");
  const backchannelLogoutUri = input.backchannelLogoutUri === undefined ? undefined : validateRedirectUri(input.backchannelLogoutUri, "backchannel_logout_uri");
  const grantTypes = [...new Set(input.grantTypes ?? ["authorization_code", "refresh_token"])];
  const unknownGrant = grantTypes.filter((g) => !(supportedGrantTypes as readonly string[]).includes(g));
  if (unknownGrant.length || grantTypes.length === 0) {
    throw new AppError("invalid_client_metadata", `grant types must be among ${supportedGrantTypes.join(", ")}`);
  }
  if (isPublic && grantTypes.includes("client_credentials")) {
    throw new AppError("invalid_client_metadata", "a public client cannot use client_credentials");
  }
  const redirectUris = (input.redirectUris ?? []).map((u) => validateRedirectUri(u));
  const postLogoutRedirectUris = (input.postLogoutRedirectUris ?? []).map((u) => validateRedirectUri(u, "post_logout_redirect_uri"));
  const usesCode = grantTypes.includes("authorization_code");
  // The device grant signs a user in too, on another device (RFC 8628), but
  // needs no redirect URI: a CLI may be a public client without one.
  const usesDevice = grantTypes.includes(deviceCodeGrantType);
  if (usesCode && redirectUris.length === 0) {
    throw new AppError("invalid_client_metadata", "the authorization_code grant needs at least one redirect URI");
  }
  if (grantTypes.includes("refresh_token") && !usesCode && !usesDevice) {
    throw new AppError("invalid_client_metadata", "refresh_token needs the authorization_code or device_code grant");
  }
  const defaultScope = usesCode || usesDevice ? "openid profile email offline_access" : "";
  const scope = parseScope(input.scope ?? defaultScope, resourceScopes).join(" ");
  // A client_credentials client without a scope gets tokens with no scope and no audience.
  if (!scope && (usesCode || usesDevice)) throw new AppError("invalid_client_metadata", "scope must name at least one scope (for sign-in, openid)");
  // Private-use schemes (com.example.app:/cb) belong to native apps (RFC 8252),
  // which oidc-provider accepts only with application_type "native".
  const native = [...redirectUris, ...postLogoutRedirectUris].some((uri) => !/^https?:/i.test(uri));
  return {
    client_name: name,
    redirect_uris: redirectUris,
    post_logout_redirect_uris: postLogoutRedirectUris,
    grant_types: grantTypes,
    response_types: usesCode ? ["code"] : [],
    scope,
    token_endpoint_auth_method: authMethod,
    ...(native && { application_type: "native" }),
    ...(jwksUri && { jwks_uri: jwksUri }),
    ...(jwks && { jwks }),
    ...(idTokenAlg && { id_token_signed_response_alg: idTokenAlg }),
    ...(introspectionAlg && { introspection_signed_response_alg: introspectionAlg }),
    ...(backchannelLogoutUri && { backchannel_logout_uri: backchannelLogoutUri }),
  };
}

function signingAlg(value: string | undefined, field: string): string | undefined {
  if (value !== undefined && !(tokenSigningAlgs as readonly string[]).includes(value)) {
    throw new AppError("invalid_client_metadata", `${field} must be one of ${tokenSigningAlgs.join(", ")}`);
  }
  return value;
}

const privateJwkMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/** A client's inline JWKS: 1 to 10 public signing keys (RSA, EC or OKP), no private parts. */
function validatePublicJwks(jwks: { keys: PublicJwk[] }): { keys: PublicJwk[] } {
  if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0 || jwks.keys.length > 10) {
    throw new AppError("invalid_client_metadata", "jwks must be {\"keys\": [...]} with 1 to 10 public keys");
  }
  jwks.keys.forEach((key, i) => {
    if (!key || typeof key !== "object" || !["RSA", "EC", "OKP"].includes(key.kty)) {
      throw new AppError("invalid_client_metadata", `jwks.keys[${i}].kty must be RSA, EC or OKP`);
    }
    const found = privateJwkMembers.find((member) => member in key);
    if (found) throw new AppError("invalid_client_metadata", `jwks.keys[${i}] has the private member "${found}": register public keys only`);
  });
  return { keys: jwks.keys };
}

function validateHttpsUrl(value: string, field: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new AppError("invalid_client_metadata", `${field} is not an absolute URL`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopback(url.hostname))) {
    throw new AppError("invalid_client_metadata", `${field} must use https`);
  }
  return value;
}

/** Whether the client authenticates with a shared secret that Gatehouse generates. */
function usesSecret(metadata: Record<string, unknown>): boolean {
  return metadata.token_endpoint_auth_method === "client_secret_basic" || metadata.token_endpoint_auth_method === "client_secret_post";
}

/**
 * A new client_id: 128 random bits in base64url that do not start with "-",
 * so that an id can follow a flag of the gatehouse command
 * (`--introspection-client ID`): Node's parseArgs refuses an option value that
 * starts with a dash. One draw in 64 is taken again.
 */
export function newClientId(random: (size: number) => Buffer = randomBytes): string {
  for (;;) {
    const id = random(16).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

/**
 * Creates a client. The secret is 256 random bits, returned once and stored
 * sealed with the master key (never hashed: a slow hash would cap client
 * authentication at the token endpoint).
 */
export async function createClient(
  db: Database,
  ring: MasterKeyRing,
  input: CreateClientInput,
  actor: Actor = systemActor,
  validate?: MetadataValidator,
): Promise<CreatedClient> {
  const metadata = buildClientMetadata(input, await registeredResourceScopes(db));
  const clientId = newClientId();
  const secret = usesSecret(metadata) ? randomBytes(32).toString("base64url") : undefined;
  await validate?.({ ...metadata, client_id: clientId, ...(secret && { client_secret: secret }) });
  await transaction(db, async (tx) => {
    await insertClient(tx, {
      id: clientId,
      name: metadata.client_name,
      secretEncrypted: secret ? await ring.encrypt(secret, clientSecretContext(clientId)) : null,
      metadata,
      firstParty: input.firstParty ?? false,
    });
    await appendAuditEvent(tx, db, { type: "client.created", ...actor, clientId, data: { client_name: metadata.client_name, grant_types: metadata.grant_types, scope: metadata.scope } });
  });
  noteChanged(db, "clients");
  return secret ? { client_id: clientId, client_secret: secret } : { client_id: clientId };
}

export async function getClient(db: Database, clientId: string): Promise<ClientView> {
  const row = await findClientRow(db, clientId);
  if (!row) throw new AppError("not_found", "no such client");
  return toClientView(row);
}

/**
 * Changes a client. Fields left out keep their value; the secret is not
 * changed here. Narrowing what a client may do does not revoke what it holds:
 * use a revocation for that.
 */
export async function updateClient(
  db: Database,
  clientId: string,
  input: Partial<CreateClientInput>,
  actor: Actor,
  validate?: MetadataValidator,
): Promise<ClientView> {
  const row = await findClientRow(db, clientId);
  if (!row) throw new AppError("not_found", "no such client");
  const current = toClientView(row);
  const resourceScopes = await registeredResourceScopes(db);
  // Scopes of a resource server deleted since (or of a scope it dropped) are
  // left out of a kept scope, rather than refusing every change to the client.
  const keptScope = current.scope
    .split(" ")
    .filter((s) => s && ((supportedScopes as readonly string[]).includes(s) || resourceScopes.has(s)))
    .join(" ");
  const merged: CreateClientInput = {
    name: input.name ?? current.client_name,
    redirectUris: input.redirectUris ?? current.redirect_uris,
    postLogoutRedirectUris: input.postLogoutRedirectUris ?? current.post_logout_redirect_uris,
    tokenEndpointAuthMethod: current.token_endpoint_auth_method,
    grantTypes: input.grantTypes ?? current.grant_types,
    scope: input.scope ?? keptScope,
    firstParty: input.firstParty ?? current.first_party,
    backchannelLogoutUri: input.backchannelLogoutUri ?? current.backchannel_logout_uri ?? undefined,
    // Keys are replaced as a whole: new jwks drop a jwks_uri and the other way round.
    ...(input.jwksUri !== undefined || input.jwks !== undefined
      ? { jwksUri: input.jwksUri, jwks: input.jwks }
      : { jwksUri: current.jwks_uri ?? undefined, jwks: current.jwks ?? undefined }),
    idTokenSignedResponseAlg: input.idTokenSignedResponseAlg ?? current.id_token_signed_response_alg,
    introspectionSignedResponseAlg: input.introspectionSignedResponseAlg ?? current.introspection_signed_response_alg,
  };
  const metadata = buildClientMetadata(merged, resourceScopes);
  await validate?.({ ...metadata, client_id: clientId, ...(usesSecret(metadata) && { client_secret: "unchanged-secret-for-validation-only" }) });
  const updated = await transaction(db, async (tx) => {
    const next = await updateClientRow(tx, clientId, { name: metadata.client_name, metadata, firstParty: merged.firstParty ?? false });
    await appendAuditEvent(tx, db, { type: "client.updated", ...actor, clientId, data: { changes: Object.keys(input) } });
    return next;
  });
  noteChanged(db, "clients");
  return toClientView(updated);
}

/** Deletes a client and revokes everything issued to it (grants, their tokens, its own tokens). */
export async function deleteClient(db: Database, clientId: string, actor: Actor): Promise<{ grants: number }> {
  const deleted = await transaction(db, async (tx) => {
    const row = await findClientRow(tx, clientId);
    if (!row) throw new AppError("not_found", "no such client");
    const grants = await deleteGrantsAndTokens(tx, { clientId });
    await deleteTokensOfClient(tx, clientId);
    await deleteClientRow(tx, clientId);
    await appendAuditEvent(tx, db, { type: "client.deleted", ...actor, clientId, data: { client_name: row.name, revoked: { grants } } });
    return { grants };
  });
  noteChanged(db, "clients");
  return deleted;
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
    backchannel_logout_uri: (m.backchannel_logout_uri as string | undefined) ?? null,
    jwks_uri: (m.jwks_uri as string | undefined) ?? null,
    jwks: (m.jwks as { keys: PublicJwk[] } | undefined) ?? null,
    id_token_signed_response_alg: (m.id_token_signed_response_alg as string | undefined) ?? defaultTokenSigningAlg,
    introspection_signed_response_alg: (m.introspection_signed_response_alg as string | undefined) ?? defaultTokenSigningAlg,
    first_party: row.firstParty,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

/** Clients in id order, a page at a time, without secrets. */
export async function listClients(db: Database, page: { after?: string; limit?: number } = {}): Promise<ClientView[]> {
  return (await listClientRows(db, page)).map(toClientView);
}
