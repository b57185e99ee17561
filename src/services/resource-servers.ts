/**
 * Resource servers (APIs) that accept Gatehouse access tokens (RFC 8707
 * resource indicators; RFC 9068 JWT access tokens): one place for the rules,
 * called by the CLI and the admin API alike (docs/resource-servers.md).
 * The admin API is a built-in resource server: listed, never changed here.
 */
import { randomUUID } from "node:crypto";
import { transaction, type Database } from "../db/transaction.ts";
import {
  deleteGrantsAndTokensForResource,
  deleteResourceServerRow,
  findResourceServerByIdentifier,
  findResourceServerRow,
  insertResourceServer,
  listResourceServerRows,
  listResourceServersIn,
  updateResourceServerRow,
  type ResourceServerData,
  type ResourceServerRow,
  type ResourceServerScope,
} from "../db/resource-servers.ts";
import { findClientRow } from "../db/clients.ts";
import { AppError } from "../errors.ts";
import { appendAuditEvent } from "./audit.ts";
import type { Actor } from "./actor.ts";
import { adminResourceFor, adminResourceId, adminScopes, builtInScopes, maxResourceAccessTokenTtl, scopeDescriptions } from "../scopes.ts";
import { defaultTokenSigningAlg, tokenSigningAlgs } from "../protocol.ts";

export const tokenFormats = ["opaque", "jwt"] as const;
export type TokenFormat = (typeof tokenFormats)[number];

export interface ResourceServerInput {
  identifier: string;
  name?: string;
  /** Scope names, or names with the description the consent page shows. */
  scopes: (string | { name: string; description?: string })[];
  tokenFormat?: string;
  signingAlg?: string;
  /** Seconds; ACCESS_TOKEN_TTL when left out. */
  accessTokenTtl?: number;
  introspectionClients?: string[];
}

export interface ResourceServerView {
  id: string;
  identifier: string;
  name: string;
  scopes: ResourceServerScope[];
  token_format: string;
  signing_alg: string;
  access_token_ttl: number;
  introspection_clients: string[];
  /** The admin API: listed, not changeable. */
  built_in: boolean;
  created_at: string | null;
  updated_at: string | null;
}

/** What the service needs from the configuration. */
export interface ResourceServerSettings {
  issuer: string;
  /** ACCESS_TOKEN_TTL: the default lifetime, and the admin API's. */
  accessTokenTtl: number;
}

/** The admin API as a resource server (built in: opaque tokens, so that deleting one revokes it at once). */
export function adminResourceServer(settings: ResourceServerSettings): ResourceServerView {
  return {
    id: adminResourceId,
    identifier: adminResourceFor(settings.issuer),
    name: "Gatehouse admin API",
    scopes: adminScopes.map((name) => ({ name, description: scopeDescriptions[name] ?? "" })),
    token_format: "opaque",
    signing_alg: defaultTokenSigningAlg,
    access_token_ttl: settings.accessTokenTtl,
    introspection_clients: [],
    built_in: true,
    created_at: null,
    updated_at: null,
  };
}

function toView(row: ResourceServerRow): ResourceServerView {
  return {
    id: row.id,
    identifier: row.identifier,
    name: row.name,
    scopes: row.scopes,
    token_format: row.tokenFormat,
    signing_alg: row.signingAlg,
    access_token_ttl: row.accessTokenTtl,
    introspection_clients: row.introspectionClients,
    built_in: false,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

const invalid = (message: string) => new AppError("invalid_request", message);
const controlCharacters = /[\u0000-\u001f\u007f]/;

/** An absolute URI without a fragment (RFC 8707 section 2), not the admin API's. */
function validateIdentifier(identifier: string, settings: ResourceServerSettings): string {
  let url: URL;
  try {
    url = new URL(identifier);
  } catch {
    throw invalid(`identifier ${JSON.stringify(identifier)} is not an absolute URI`);
  }
  if (identifier.includes("#") || url.hash) throw invalid("identifier must not have a fragment (RFC 8707 section 2)");
  if (identifier.length > 2000 || /\s/.test(identifier)) throw invalid("identifier must be at most 2000 characters, without spaces");
  if (identifier === adminResourceFor(settings.issuer)) throw new AppError("conflict", "identifier is the built-in admin API's");
  return identifier;
}

/** RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const scopeToken = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/;

function validateScopes(scopes: ResourceServerInput["scopes"]): ResourceServerScope[] {
  if (!Array.isArray(scopes) || scopes.length === 0 || scopes.length > 100) throw invalid("scopes must name 1 to 100 scopes");
  const seen = new Set<string>();
  return scopes.map((scope) => {
    const { name, description = "" } = typeof scope === "string" ? { name: scope } : scope;
    if (typeof name !== "string" || !scopeToken.test(name)) throw invalid(`scope ${JSON.stringify(name)} is not a valid scope name (RFC 6749 section 3.3)`);
    if ((builtInScopes as readonly string[]).includes(name)) throw invalid(`scope ${name} is built in; name the API's own scopes, such as read:orders`);
    if (seen.has(name)) throw invalid(`scope ${name} is listed twice`);
    seen.add(name);
    if (typeof description !== "string" || description.length > 300 || controlCharacters.test(description)) {
      throw invalid(`the description of ${name} must be at most 300 characters, without control characters`);
    }
    return { name, description };
  });
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], field: string, fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw invalid(`${field} must be one of ${allowed.join(", ")}`);
  return value as T;
}

function validateTtl(ttl: number | undefined, fallback: number): number {
  const value = ttl ?? Math.min(fallback, maxResourceAccessTokenTtl);
  if (!Number.isSafeInteger(value) || value < 1 || value > maxResourceAccessTokenTtl) {
    throw invalid(`access_token_ttl must be from 1 to ${maxResourceAccessTokenTtl} seconds`);
  }
  return value;
}

function validateName(name: string | undefined, identifier: string): string {
  const value = (name ?? identifier).trim();
  if (!value || value.length > 200 || controlCharacters.test(value)) throw invalid("name must be 1 to 200 characters, without control characters");
  return value;
}

async function validateIntrospectionClients(db: Database, ids: string[] | undefined): Promise<string[]> {
  const unique = [...new Set(ids ?? [])];
  if (unique.length > 50) throw invalid("introspection_clients lists at most 50 clients");
  for (const id of unique) {
    if (!(await findClientRow(db, id))) throw invalid(`introspection client ${JSON.stringify(id)} is not a registered client`);
  }
  return unique;
}

/** A scope name belongs to one resource server, so that a scope names its API (docs/resource-servers.md). */
function assertScopesFree(scopes: ResourceServerScope[], others: ResourceServerRow[]): void {
  for (const other of others) {
    const taken = scopes.find((s) => other.scopes.some((o) => o.name === s.name));
    if (taken) throw new AppError("conflict", `scope ${taken.name} already belongs to the resource server ${other.identifier}`);
  }
}

/** Registers a resource server (an API); its scopes become allowed to clients (clients create --scope). */
export async function createResourceServer(db: Database, settings: ResourceServerSettings, input: ResourceServerInput, actor: Actor): Promise<ResourceServerView> {
  const identifier = validateIdentifier(input.identifier, settings);
  const data: ResourceServerData = {
    identifier,
    name: validateName(input.name, identifier),
    scopes: validateScopes(input.scopes),
    tokenFormat: oneOf(input.tokenFormat, tokenFormats, "token_format", "opaque"),
    signingAlg: oneOf(input.signingAlg, tokenSigningAlgs, "signing_alg", defaultTokenSigningAlg),
    accessTokenTtl: validateTtl(input.accessTokenTtl, settings.accessTokenTtl),
    introspectionClients: await validateIntrospectionClients(db, input.introspectionClients),
  };
  const row = await transaction(db, async (tx) => {
    const all = await listResourceServersIn(tx);
    if (all.some((r) => r.identifier === identifier)) throw new AppError("conflict", `a resource server with identifier ${identifier} exists`);
    assertScopesFree(data.scopes, all);
    const created = await insertResourceServer(tx, { id: randomUUID(), ...data });
    await appendAuditEvent(tx, db, {
      type: "resource_server.created",
      ...actor,
      data: { id: created.id, identifier, scopes: data.scopes.map((s) => s.name), token_format: data.tokenFormat },
    });
    return created;
  });
  return toView(row);
}

/** The admin API first, then the registered resource servers by id. */
export async function listResourceServers(
  db: Database,
  settings: ResourceServerSettings,
  page: { after?: string; limit?: number } = {},
): Promise<ResourceServerView[]> {
  const rows = (await listResourceServerRows(db, page)).map(toView);
  return page.after === undefined ? [adminResourceServer(settings), ...rows] : rows;
}

export async function getResourceServer(db: Database, settings: ResourceServerSettings, id: string): Promise<ResourceServerView> {
  if (id === adminResourceId) return adminResourceServer(settings);
  const row = await findResourceServerRow(db, id);
  if (!row) throw new AppError("not_found", "no such resource server");
  return toView(row);
}

function refuseBuiltIn(id: string, what: string): void {
  if (id === adminResourceId) throw new AppError("forbidden", `the admin API is a built-in resource server and cannot be ${what}`);
}

/**
 * Changes a resource server; fields left out keep their value. The
 * identifier is fixed (it is the audience of tokens already issued).
 * Tokens already issued keep what they were issued with.
 */
export async function updateResourceServer(
  db: Database,
  settings: ResourceServerSettings,
  id: string,
  input: Partial<Omit<ResourceServerInput, "identifier">>,
  actor: Actor,
): Promise<ResourceServerView> {
  refuseBuiltIn(id, "changed");
  const current = await findResourceServerRow(db, id);
  if (!current) throw new AppError("not_found", "no such resource server");
  const data: Partial<ResourceServerData> = {
    ...(input.name !== undefined && { name: validateName(input.name, current.identifier) }),
    ...(input.scopes !== undefined && { scopes: validateScopes(input.scopes) }),
    ...(input.tokenFormat !== undefined && { tokenFormat: oneOf(input.tokenFormat, tokenFormats, "token_format", "opaque") }),
    ...(input.signingAlg !== undefined && { signingAlg: oneOf(input.signingAlg, tokenSigningAlgs, "signing_alg", defaultTokenSigningAlg) }),
    ...(input.accessTokenTtl !== undefined && { accessTokenTtl: validateTtl(input.accessTokenTtl, settings.accessTokenTtl) }),
    ...(input.introspectionClients !== undefined && { introspectionClients: await validateIntrospectionClients(db, input.introspectionClients) }),
  };
  const row = await transaction(db, async (tx) => {
    if (data.scopes) assertScopesFree(data.scopes, (await listResourceServersIn(tx)).filter((r) => r.id !== id));
    const updated = await updateResourceServerRow(tx, id, data);
    await appendAuditEvent(tx, db, { type: "resource_server.updated", ...actor, data: { id, identifier: current.identifier, changes: Object.keys(data) } });
    return updated;
  });
  return toView(row);
}

/**
 * Deletes a resource server and revokes, in the same transaction, every
 * grant holding scopes for it and every access token issued for it: its
 * opaque tokens introspect as inactive from then on. JWT access tokens
 * already handed out cannot be recalled; they live at most access_token_ttl.
 */
export async function deleteResourceServer(db: Database, id: string, actor: Actor): Promise<{ grants: number; tokens: number }> {
  refuseBuiltIn(id, "deleted");
  return transaction(db, async (tx) => {
    const row = await findResourceServerRow(tx, id);
    if (!row) throw new AppError("not_found", "no such resource server");
    await deleteResourceServerRow(tx, id);
    const revoked = await deleteGrantsAndTokensForResource(tx, row.identifier);
    await appendAuditEvent(tx, db, { type: "resource_server.deleted", ...actor, data: { id, identifier: row.identifier, revoked } });
    return revoked;
  });
}

/** Scope names of every registered resource server (what clients may additionally be allowed). */
export async function registeredResourceScopes(db: Database): Promise<Set<string>> {
  return new Set((await listResourceServerRows(db)).flatMap((r) => r.scopes.map((s) => s.name)));
}


/**
 * What the consent page shows for the scopes of resource servers that a
 * client asks for (oidc-provider's missingResourceScopes: indicator -> scopes):
 * each scope's description, or which API it opens when it has none.
 */
export async function describeResourceScopes(db: Database, missing: Record<string, string[]>): Promise<{ name: string; description: string }[]> {
  const indicators = Object.keys(missing);
  if (indicators.length === 0) return [];
  const rows = await listResourceServerRows(db);
  return indicators.flatMap((indicator) => {
    const row = rows.find((r) => r.identifier === indicator);
    return (missing[indicator] ?? []).map((name) => {
      const description = row?.scopes.find((s) => s.name === name)?.description || scopeDescriptions[name] || `use ${row?.name ?? indicator}`;
      return { name, description };
    });
  });
}
