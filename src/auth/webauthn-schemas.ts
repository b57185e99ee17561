/**
 * JSON schemas (TypeBox) of the passkey ceremonies' request bodies, shared by
 * the sign-in and account routes: every field typed and bounded, so that a
 * response is refused with 400 before any work is done with it (OWASP Input
 * Validation Cheat Sheet). The shapes are WebAuthn Level 3's JSON encodings
 * (section 5.1: RegistrationResponseJSON, AuthenticationResponseJSON) as
 * @simplewebauthn/browser builds them field by field, so unknown properties
 * are refused.
 */
import { Type, type Static } from "@sinclair/typebox";

const strict = { additionalProperties: false } as const;

/** Unpadded base64url (RFC 4648 section 5), as WebAuthn's JSON encodings use. */
const base64url = (maxLength: number) => Type.String({ maxLength, pattern: "^[A-Za-z0-9_-]*$" });

// Credential ids are at most 1023 bytes (WebAuthn Level 3, section 4: Credential ID).
const CredentialId = base64url(1366);

/** Extension outputs: only credProps is requested (by @simplewebauthn/server's registration options). */
const ClientExtensionResults = Type.Object(
  {
    credProps: Type.Optional(Type.Object({ rk: Type.Optional(Type.Boolean()) }, strict)),
    appid: Type.Optional(Type.Boolean()),
    appidExclude: Type.Optional(Type.Boolean()),
    hmacCreateSecret: Type.Optional(Type.Boolean()),
  },
  strict,
);

const AuthenticatorAttachment = Type.Union([Type.Literal("platform"), Type.Literal("cross-platform")]);

/** A challenge's id as startPasskey*() issue it (16 random bytes, base64url). */
const ChallengeId = base64url(64);

/** navigator.credentials.get()'s result, JSON-encoded. */
export const AuthenticationResponse = Type.Object(
  {
    id: CredentialId,
    rawId: CredentialId,
    type: Type.Literal("public-key"),
    response: Type.Object(
      {
        clientDataJSON: base64url(4096),
        authenticatorData: base64url(4096),
        // An RSA-4096 signature is 512 bytes; ECDSA and EdDSA ones are smaller.
        signature: base64url(1024),
        // User handles are at most 64 bytes (section 5.4.3).
        userHandle: Type.Optional(base64url(128)),
      },
      strict,
    ),
    clientExtensionResults: ClientExtensionResults,
    authenticatorAttachment: Type.Optional(AuthenticatorAttachment),
  },
  strict,
);

/** navigator.credentials.create()'s result, JSON-encoded. */
export const RegistrationResponse = Type.Object(
  {
    id: CredentialId,
    rawId: CredentialId,
    type: Type.Literal("public-key"),
    response: Type.Object(
      {
        clientDataJSON: base64url(4096),
        // Attestation "none" is asked for; a packed statement with a short certificate chain still fits.
        attestationObject: base64url(8192),
        authenticatorData: Type.Optional(base64url(6144)),
        transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 8 })),
        publicKeyAlgorithm: Type.Optional(Type.Integer({ minimum: -65536, maximum: 65535 })),
        publicKey: Type.Optional(base64url(2048)),
      },
      strict,
    ),
    clientExtensionResults: ClientExtensionResults,
    authenticatorAttachment: Type.Optional(AuthenticatorAttachment),
  },
  strict,
);

/** POST /interaction/:uid/passkey */
export const PasskeySignInBody = Type.Object({ challengeId: ChallengeId, response: AuthenticationResponse }, strict);
export type PasskeySignInBody = Static<typeof PasskeySignInBody>;

/** POST /account/passkeys */
export const PasskeyRegistrationBody = Type.Object(
  { challengeId: ChallengeId, response: RegistrationResponse, name: Type.Optional(Type.String({ maxLength: 100 })) },
  strict,
);
export type PasskeyRegistrationBody = Static<typeof PasskeyRegistrationBody>;

/** POST .../passkey/options and /account/passkeys/options: the pages send {}. */
export const PasskeyOptionsBody = Type.Object({}, strict);
