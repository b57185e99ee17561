/**
 * WebAuthn ceremonies through @simplewebauthn/server (WebAuthn Level 3, sections 7.1 and 7.2): the
 * relying party is the issuer (RP ID its host name, origin its origin), so a
 * credential made for Gatehouse works nowhere else and vice versa.
 */
import type {
  AuthenticationResponseJSON,
  AuthenticatorTransport,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from "@simplewebauthn/server";

let webauthn: Promise<typeof import("@simplewebauthn/server")> | undefined;

/**
 * @simplewebauthn/server, loaded by the first ceremony rather than at start:
 * with its certificate-parsing dependencies it was about a sixth of the
 * server's start-up time and 25 MB resident (docs/PERFORMANCE.md).
 */
function loadWebAuthn() {
  return (webauthn ??= import("@simplewebauthn/server"));
}

export interface RelyingParty {
  id: string;
  name: string;
  origin: string;
}

export function relyingPartyFor(issuer: string): RelyingParty {
  const url = new URL(issuer);
  return { id: url.hostname, name: "Gatehouse", origin: url.origin };
}

/** The WebAuthn user handle for a user: the bytes of our user id. */
function userHandleOf(userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(userId, "utf8"));
}

export interface StoredCredential {
  credentialId: Uint8Array<ArrayBuffer>;
  publicKey: Uint8Array<ArrayBuffer>;
  counter: bigint;
  transports: string[];
}

export async function createRegistrationOptions(
  rp: RelyingParty,
  user: { id: string; email: string; name: string | null },
  existing: StoredCredential[],
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const { generateRegistrationOptions } = await loadWebAuthn();
  return generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userID: userHandleOf(user.id),
    userName: user.email,
    userDisplayName: user.name ?? user.email,
    attestationType: "none",
    excludeCredentials: existing.map((c) => ({
      id: Buffer.from(c.credentialId).toString("base64url"),
      transports: c.transports as AuthenticatorTransport[],
    })),
    // Discoverable credentials, so that sign-in needs no email.
    authenticatorSelection: { residentKey: "required", userVerification: "preferred" },
  });
}

export async function checkRegistration(rp: RelyingParty, response: RegistrationResponseJSON, expectedChallenge: string) {
  const { verifyRegistrationResponse } = await loadWebAuthn();
  const result = await verifyRegistrationResponse({
    response,
    expectedChallenge,
    expectedOrigin: rp.origin,
    expectedRPID: rp.id,
    requireUserVerification: false,
  });
  if (!result.verified) throw new Error("registration not verified");
  const { credential, credentialDeviceType, credentialBackedUp } = result.registrationInfo;
  return {
    credentialId: new Uint8Array(Buffer.from(credential.id, "base64url")),
    publicKey: credential.publicKey,
    counter: BigInt(credential.counter),
    transports: credential.transports ?? response.response.transports ?? [],
    deviceType: credentialDeviceType,
    backedUp: credentialBackedUp,
  };
}

export async function createAuthenticationOptions(rp: RelyingParty): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const { generateAuthenticationOptions } = await loadWebAuthn();
  // No allowCredentials: the authenticator offers its discoverable credentials.
  return generateAuthenticationOptions({ rpID: rp.id, userVerification: "preferred" });
}

export async function checkAuthentication(
  rp: RelyingParty,
  response: AuthenticationResponseJSON,
  expectedChallenge: string,
  stored: StoredCredential,
) {
  const { verifyAuthenticationResponse } = await loadWebAuthn();
  const result = await verifyAuthenticationResponse({
    response,
    expectedChallenge,
    expectedOrigin: rp.origin,
    expectedRPID: rp.id,
    requireUserVerification: false,
    credential: {
      id: Buffer.from(stored.credentialId).toString("base64url"),
      publicKey: new Uint8Array(stored.publicKey),
      counter: Number(stored.counter),
      transports: stored.transports as AuthenticatorTransport[],
    },
  });
  if (!result.verified) throw new Error("authentication not verified");
  return { newCounter: BigInt(result.authenticationInfo.newCounter), userVerified: result.authenticationInfo.userVerified };
}
