/**
 * JSON schemas (TypeBox) of the admin API: they validate requests and
 * responses, and @fastify/swagger builds the OpenAPI document from them, so
 * the document cannot drift from what the API accepts.
 */
import { Type, type Static } from "@sinclair/typebox";
import { roles } from "../services/users.ts";
import { authMethods, supportedGrantTypes } from "../services/clients.ts";
import { tokenSigningAlgs } from "../protocol.ts";
import { tokenFormats } from "../services/resource-servers.ts";
import { maxResourceAccessTokenTtl } from "../scopes.ts";

const strict = { additionalProperties: false } as const;

export const ErrorBody = Type.Object({ error: Type.String(), error_description: Type.String() }, { $id: "Error" });

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) }, strict);

export const PageQuery = {
  cursor: Type.Optional(Type.String({ maxLength: 200, description: "next_cursor from the previous page" })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
};

export const User = Type.Object(
  {
    id: Type.String(),
    email: Type.String(),
    name: Type.Union([Type.String(), Type.Null()]),
    role: Type.String(),
    disabled: Type.Boolean(),
    has_password: Type.Boolean(),
    email_verified: Type.Boolean(),
    created_at: Type.String({ format: "date-time" }),
    updated_at: Type.String({ format: "date-time" }),
  },
  { $id: "User" },
);

const Role = Type.Union(roles.map((r) => Type.Literal(r)));
const Password = Type.String({ minLength: 8, maxLength: 256 });

export const CreateUserBody = Type.Object(
  {
    email: Type.String({ format: "email", maxLength: 254 }),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    role: Type.Optional(Role),
    password: Type.Optional(Password),
    email_verified: Type.Optional(Type.Boolean({ description: "The operator vouches for the address: the email_verified claim is true from the start." })),
  },
  strict,
);

export const UpdateUserBody = Type.Object(
  {
    name: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
    role: Type.Optional(Role),
    disabled: Type.Optional(Type.Boolean()),
  },
  { ...strict, minProperties: 1 },
);

export const PasswordBody = Type.Object({ password: Password }, strict);

export const Session = Type.Object({
  id: Type.String(),
  created_at: Type.String({ format: "date-time" }),
  expires_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
});

export const Grant = Type.Object({
  id: Type.String(),
  client_id: Type.Union([Type.String(), Type.Null()]),
  scope: Type.String(),
  created_at: Type.String({ format: "date-time" }),
  expires_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
});

export const Passkey = Type.Object({
  id: Type.String(),
  name: Type.String(),
  device_type: Type.String(),
  backed_up: Type.Boolean(),
  transports: Type.Array(Type.String()),
  created_at: Type.String({ format: "date-time" }),
  last_used_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
});

export const RevocationBody = Type.Object(
  {
    user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    issued_before: Type.Optional(Type.String({ format: "date-time" })),
  },
  strict,
);

export const RevocationResult = Type.Object({ revoked: Type.Object({ grants: Type.Integer(), sessions: Type.Integer() }) });

const Uri = Type.String({ format: "uri", maxLength: 2000 });

export const Client = Type.Object(
  {
    client_id: Type.String(),
    client_name: Type.String(),
    redirect_uris: Type.Array(Type.String()),
    post_logout_redirect_uris: Type.Array(Type.String()),
    grant_types: Type.Array(Type.String()),
    scope: Type.String(),
    token_endpoint_auth_method: Type.String(),
    backchannel_logout_uri: Type.Union([Type.String(), Type.Null()]),
    jwks_uri: Type.Union([Type.String(), Type.Null()]),
    jwks: Type.Union([Type.Object({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) }), Type.Null()]),
    id_token_signed_response_alg: Type.String(),
    introspection_signed_response_alg: Type.String(),
    first_party: Type.Boolean(),
    created_at: Type.String({ format: "date-time" }),
    updated_at: Type.String({ format: "date-time" }),
  },
  { $id: "Client" },
);

const jwkText = (maxLength: number) => Type.String({ maxLength });

/**
 * A public JWK (RFC 7517 section 4, RFC 7518 section 6): the members of RSA,
 * EC and OKP public keys. Private members (d, p, q, ...) are not among them,
 * so a private key is refused naming its member.
 */
const PublicJwk = Type.Object(
  {
    kty: Type.Union([Type.Literal("RSA"), Type.Literal("EC"), Type.Literal("OKP")]),
    kid: Type.Optional(jwkText(200)),
    use: Type.Optional(Type.Literal("sig")),
    alg: Type.Optional(jwkText(20)),
    key_ops: Type.Optional(Type.Array(jwkText(20), { maxItems: 8 })),
    n: Type.Optional(jwkText(2048)),
    e: Type.Optional(jwkText(16)),
    crv: Type.Optional(jwkText(20)),
    x: Type.Optional(jwkText(200)),
    y: Type.Optional(jwkText(200)),
    x5c: Type.Optional(Type.Array(jwkText(8192), { maxItems: 5 })),
    x5t: Type.Optional(jwkText(100)),
    "x5t#S256": Type.Optional(jwkText(100)),
  },
  strict,
);

const clientFields = {
  client_name: Type.String({ minLength: 1, maxLength: 200 }),
  redirect_uris: Type.Array(Uri, { maxItems: 50 }),
  post_logout_redirect_uris: Type.Array(Uri, { maxItems: 50 }),
  grant_types: Type.Array(Type.Union(supportedGrantTypes.map((g) => Type.Literal(g))), { minItems: 1, uniqueItems: true }),
  scope: Type.String({ maxLength: 1000 }),
  first_party: Type.Boolean(),
  backchannel_logout_uri: Uri,
  jwks_uri: Uri,
  jwks: Type.Object({ keys: Type.Array(PublicJwk, { minItems: 1, maxItems: 10 }) }, strict),
  id_token_signed_response_alg: Type.Union(tokenSigningAlgs.map((a) => Type.Literal(a))),
  introspection_signed_response_alg: Type.Union(tokenSigningAlgs.map((a) => Type.Literal(a))),
};

export const CreateClientBody = Type.Object(
  {
    ...clientFields,
    redirect_uris: Type.Optional(clientFields.redirect_uris),
    post_logout_redirect_uris: Type.Optional(clientFields.post_logout_redirect_uris),
    grant_types: Type.Optional(clientFields.grant_types),
    scope: Type.Optional(clientFields.scope),
    first_party: Type.Optional(clientFields.first_party),
    backchannel_logout_uri: Type.Optional(clientFields.backchannel_logout_uri),
    jwks_uri: Type.Optional(clientFields.jwks_uri),
    jwks: Type.Optional(clientFields.jwks),
    id_token_signed_response_alg: Type.Optional(clientFields.id_token_signed_response_alg),
    introspection_signed_response_alg: Type.Optional(clientFields.introspection_signed_response_alg),
    token_endpoint_auth_method: Type.Optional(Type.Union(authMethods.map((m) => Type.Literal(m)))),
  },
  strict,
);

export const UpdateClientBody = Type.Partial(Type.Object(clientFields), { ...strict, minProperties: 1 });

export const CreatedClient = Type.Object({ client_id: Type.String(), client_secret: Type.Optional(Type.String()) });

const ResourceScope = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 128 }), description: Type.Optional(Type.String({ maxLength: 300 })) },
  strict,
);

export const ResourceServer = Type.Object(
  {
    id: Type.String(),
    identifier: Type.String({ description: "absolute URI: the resource indicator (RFC 8707) and the tokens' aud" }),
    name: Type.String(),
    scopes: Type.Array(Type.Object({ name: Type.String(), description: Type.String() })),
    token_format: Type.String({ description: "opaque (checked by introspection) or jwt (RFC 9068)" }),
    signing_alg: Type.String(),
    access_token_ttl: Type.Integer({ description: "seconds" }),
    introspection_clients: Type.Array(Type.String()),
    built_in: Type.Boolean({ description: "the admin API: listed, not changeable" }),
    created_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
    updated_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  },
  { $id: "ResourceServer" },
);

const resourceFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  scopes: Type.Array(ResourceScope, { minItems: 1, maxItems: 100 }),
  token_format: Type.Union(tokenFormats.map((f) => Type.Literal(f))),
  signing_alg: Type.Union(tokenSigningAlgs.map((a) => Type.Literal(a))),
  access_token_ttl: Type.Integer({ minimum: 1, maximum: maxResourceAccessTokenTtl, description: "seconds (default ACCESS_TOKEN_TTL)" }),
  introspection_clients: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 50 }),
};

export const CreateResourceServerBody = Type.Object(
  {
    identifier: Type.String({ minLength: 1, maxLength: 2000 }),
    name: Type.Optional(resourceFields.name),
    scopes: resourceFields.scopes,
    token_format: Type.Optional(resourceFields.token_format),
    signing_alg: Type.Optional(resourceFields.signing_alg),
    access_token_ttl: Type.Optional(resourceFields.access_token_ttl),
    introspection_clients: Type.Optional(resourceFields.introspection_clients),
  },
  strict,
);

export const UpdateResourceServerBody = Type.Partial(Type.Object(resourceFields), { ...strict, minProperties: 1 });

export const AuditEvent = Type.Object({
  id: Type.String(),
  seq: Type.Integer(),
  created_at: Type.String({ format: "date-time" }),
  type: Type.String(),
  actor_type: Type.String(),
  actor_id: Type.Union([Type.String(), Type.Null()]),
  user_id: Type.Union([Type.String(), Type.Null()]),
  client_id: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  data: Type.Record(Type.String(), Type.Unknown()),
});

/** A list page: `{ items, next_cursor }`. */
export function Page<T extends import("@sinclair/typebox").TSchema>(item: T) {
  return Type.Object({ items: Type.Array(item), next_cursor: Type.Union([Type.String(), Type.Null()]) });
}

export type CreateUserBody = Static<typeof CreateUserBody>;
export type UpdateUserBody = Static<typeof UpdateUserBody>;
export type RevocationBody = Static<typeof RevocationBody>;
export type CreateClientBody = Static<typeof CreateClientBody>;
export type UpdateClientBody = Static<typeof UpdateClientBody>;
export type CreateResourceServerBody = Static<typeof CreateResourceServerBody>;
export type UpdateResourceServerBody = Static<typeof UpdateResourceServerBody>;
