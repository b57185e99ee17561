/**
 * oidc-provider's features.resourceIndicators (RFC 8707), driven by the
 * ResourceServer table plus the built-in admin API: which API a token is
 * for, with which scopes, lifetime and format (opaque, or an RFC 9068 JWT
 * signed with the API's signing_alg from the current key set).
 * See docs/resource-servers.md.
 */
import { errors, type Configuration, type KoaContextWithOIDC } from "oidc-provider";
import type { Database } from "../db/database.ts";
import { listAllResourceServers, type ResourceServerRow } from "../db/resource-servers.ts";
import { requestReads } from "./request-scope.ts";
import { adminResourceFor, adminScopes, builtInScopes } from "../scopes.ts";

/** A resource server as the provider's callbacks see it. */
export interface KnownResourceServer {
  identifier: string;
  scopes: string[];
  tokenFormat: "opaque" | "jwt";
  signingAlg: string;
  accessTokenTtl: number;
  introspectionClients: string[];
}

export interface ResourceIndicatorSettings {
  issuer: string;
  /** ACCESS_TOKEN_TTL: the admin API's token lifetime. */
  accessTokenTtl: number;
}

const readKey = "ResourceServer:all";

/**
 * The registered resource servers, read once per provider request (a token
 * request asks for them in defaultResource and getResourceServerInfo,
 * introspection for its policy; see request-scope.ts).
 */
function readResourceServers(db: Database): Promise<ResourceServerRow[]> {
  const reads = requestReads();
  let read = reads?.get(readKey) as Promise<ResourceServerRow[]> | undefined;
  if (!read) {
    read = listAllResourceServers(db);
    reads?.set(readKey, read);
  }
  return read;
}

/** The admin API as a resource server: built in, opaque (so that revocation is immediate). */
function adminResourceServer(settings: ResourceIndicatorSettings): KnownResourceServer {
  return {
    identifier: adminResourceFor(settings.issuer),
    scopes: [...adminScopes],
    tokenFormat: "opaque",
    signingAlg: "RS256",
    accessTokenTtl: settings.accessTokenTtl,
    introspectionClients: [],
  };
}

/**
 * Every resource server: the admin API, and, when `withRegistered` (the
 * request involves something other than built-in scopes and the admin
 * API), the registered ones. Requests that only concern the admin API or
 * OpenID Connect scopes read nothing more than before.
 */
export async function knownResourceServers(db: Database, settings: ResourceIndicatorSettings, withRegistered = true): Promise<KnownResourceServer[]> {
  const admin = adminResourceServer(settings);
  if (!withRegistered) return [admin];
  const rows = await readResourceServers(db);
  return [
    admin,
    ...rows.map((r) => ({
      identifier: r.identifier,
      scopes: r.scopes.map((s) => s.name),
      tokenFormat: r.tokenFormat === "jwt" ? ("jwt" as const) : ("opaque" as const),
      signingAlg: r.signingAlg,
      accessTokenTtl: r.accessTokenTtl,
      introspectionClients: r.introspectionClients,
    })),
  ];
}

const isBuiltInScope = (scope: string) => (builtInScopes as readonly string[]).includes(scope);

function requestedScopes(ctx: KoaContextWithOIDC): string[] {
  return String(ctx.oidc.params?.scope ?? "").split(" ").filter(Boolean);
}

/** The scopes a client is allowed: built-in (`scope`) and of resource servers (`resource_scope`, see client-store.ts). */
function allowedScopes(client: { scope?: string; [key: string]: unknown }): Set<string> {
  const resourceScope = typeof client.resource_scope === "string" ? client.resource_scope : "";
  return new Set(`${client.scope ?? ""} ${resourceScope}`.split(" ").filter(Boolean));
}

type ResourceIndicators = NonNullable<NonNullable<Configuration["features"]>["resourceIndicators"]>;

/** The resourceIndicators feature's configuration. */
export function resourceIndicatorsFeature(db: Database, settings: ResourceIndicatorSettings): ResourceIndicators {
  return {
    enabled: true,
    /**
     * Without a `resource` parameter: the API whose scopes were requested,
     * when they belong to exactly one (so a client of one API, the admin
     * API's included, needs no resource parameter); none when no API scope
     * was requested (an access token for userinfo). Scopes of several APIs
     * need one request each, naming the API (RFC 8707 section 2).
     */
    async defaultResource(ctx, _client, oneOf) {
      if (oneOf) return oneOf.length === 1 ? oneOf[0]! : oneOf;
      const requested = new Set(requestedScopes(ctx));
      if (requested.size === 0) return undefined as unknown as string;
      const servers = await knownResourceServers(db, settings, [...requested].some((s) => !isBuiltInScope(s)));
      const owners = servers.filter((rs) => rs.scopes.some((s) => requested.has(s)));
      if (owners.length > 1) {
        throw new errors.InvalidTarget("the requested scopes belong to several resource servers: request them one resource at a time, naming it with the resource parameter");
      }
      return owners[0]?.identifier as string;
    },
    // A code or refresh token issued for one API is used for it without naming it again.
    useGrantedResource: () => true,
    async getResourceServerInfo(ctx, resourceIndicator, client) {
      const requested = requestedScopes(ctx);
      const servers = await knownResourceServers(db, settings, resourceIndicator !== adminResourceFor(settings.issuer) || requested.some((s) => !isBuiltInScope(s)));
      const server = servers.find((rs) => rs.identifier === resourceIndicator);
      if (!server) throw new errors.InvalidTarget("resource indicator is not a registered resource server");
      // A scope of another API requested with this one is refused, not silently dropped.
      const foreign = requested.find((s) => !server.scopes.includes(s) && servers.some((rs) => rs.scopes.includes(s)));
      if (foreign) throw new errors.InvalidScope(`scope ${foreign} is not a scope of the resource ${resourceIndicator}`, foreign);
      const allowed = allowedScopes(client as unknown as { scope?: string });
      return {
        scope: server.scopes.filter((s) => allowed.has(s)).join(" "),
        audience: resourceIndicator,
        accessTokenTTL: server.accessTokenTtl,
        accessTokenFormat: server.tokenFormat,
        // RFC 9068: typ at+jwt, signed with the current key of this algorithm.
        ...(server.tokenFormat === "jwt" && { jwt: { sign: { alg: server.signingAlg as "RS256" } } }),
      };
    },
  };
}

/** A token's audiences (refresh tokens have none). */
function audiencesOf(token: object): string[] {
  const aud = (token as { aud?: unknown }).aud;
  return [aud ?? []].flat().filter((a): a is string => typeof a === "string");
}

/**
 * The clients besides a token's own that may introspect it: the
 * introspection_clients of the resource servers named by its audience.
 */
export async function introspectionClientsOf(
  db: Database,
  settings: ResourceIndicatorSettings,
  token: object,
): Promise<ReadonlySet<string>> {
  const audiences = audiencesOf(token).filter((aud) => aud !== adminResourceFor(settings.issuer));
  if (audiences.length === 0) return new Set();
  const servers = await knownResourceServers(db, settings);
  return new Set(servers.filter((rs) => audiences.includes(rs.identifier)).flatMap((rs) => rs.introspectionClients));
}

/**
 * Whether every audience of a token is still a resource server. A token
 * for a deleted resource server is revoked with it (services/resource-servers.ts);
 * this also covers one issued while the deletion committed.
 */
export async function audienceStillRegistered(db: Database, settings: ResourceIndicatorSettings, token: object): Promise<boolean> {
  const audiences = audiencesOf(token).filter((aud) => aud !== adminResourceFor(settings.issuer));
  if (audiences.length === 0) return true;
  const identifiers = new Set((await knownResourceServers(db, settings)).map((rs) => rs.identifier));
  return audiences.every((aud) => identifiers.has(aud));
}
