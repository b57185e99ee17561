/**
 * A software WebAuthn authenticator for tests that need no browser: one ES256
 * credential (node:crypto), "none" attestation, and every field a relying
 * party checks open to tampering (origin, RP ID hash, flags, counter, user
 * handle, credential id), so tests can craft the responses a real
 * authenticator would never send. Formats: WebAuthn Level 2, sections 6.1
 * (authenticator data), 6.5.1 (attested credential data), 5.8.1 (client
 * data), 8.7 ("none" attestation); COSE key: RFC 9053 section 7.1.1.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from "@simplewebauthn/server";

/** Authenticator data flags. */
export const flags = { userPresent: 0x01, userVerified: 0x04, attestedCredentialData: 0x40 } as const;

// CBOR (RFC 8949) for the few shapes WebAuthn needs: integers, byte and text
// strings, and maps. Keys are written in the order given.
type CborValue = number | string | Uint8Array | Map<number | string, CborValue>;

function cborHead(major: number, length: number): Buffer {
  if (length < 24) return Buffer.from([(major << 5) | length]);
  if (length < 0x100) return Buffer.from([(major << 5) | 24, length]);
  if (length < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(length, 1);
    return b;
  }
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(length, 1);
  return b;
}

export function encodeCbor(value: CborValue): Buffer {
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error("only integers are supported");
    return value >= 0 ? cborHead(0, value) : cborHead(1, -1 - value);
  }
  if (typeof value === "string") {
    const bytes = Buffer.from(value, "utf8");
    return Buffer.concat([cborHead(3, bytes.length), bytes]);
  }
  if (value instanceof Uint8Array) return Buffer.concat([cborHead(2, value.length), value]);
  const parts: Buffer[] = [cborHead(5, value.size)];
  for (const [k, v] of value) parts.push(encodeCbor(k), encodeCbor(v));
  return Buffer.concat(parts);
}

const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest();
const b64url = (data: Uint8Array) => Buffer.from(data).toString("base64url");

export interface ClientDataOverrides {
  /** Defaults to the authenticator's origin. */
  origin?: string;
  /** Defaults to the ceremony's ("webauthn.create" or "webauthn.get"). */
  type?: string;
  /** Defaults to the options' challenge. */
  challenge?: string;
}

export interface AuthenticatorDataOverrides {
  /** The RP ID whose SHA-256 goes into authenticator data; defaults to the options' RP ID. */
  rpId?: string;
  /** Defaults to UP|UV (|AT for registration). */
  flags?: number;
  /** The signature counter to report; defaults to the authenticator's next value. */
  counter?: number;
}

export interface AssertionOverrides extends ClientDataOverrides, AuthenticatorDataOverrides {
  /** The user handle to send, or null to send none; defaults to the one stored at registration. */
  userHandle?: string | null;
  /** The credential id to claim; defaults to this credential's. */
  credentialId?: Uint8Array;
}

/**
 * One discoverable ES256 credential, as a platform authenticator holds it.
 * `counter` is the signature counter: each assertion increments it first
 * (unless the test passes its own value), as CTAP2 authenticators do.
 */
export class SoftAuthenticator {
  readonly credentialId: Buffer;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  counter = 0;
  /** The user handle (base64url) received at registration. */
  userHandle: string | undefined;

  constructor(readonly origin: string, options: { credentialId?: Uint8Array } = {}) {
    this.credentialId = Buffer.from(options.credentialId ?? randomBytes(32));
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    this.privateKey = privateKey;
    this.publicKey = publicKey;
  }

  /** The RP ID a browser would use by default: the origin's host name. */
  get rpId(): string {
    return new URL(this.origin).hostname;
  }

  /** The credential id as sent on the wire (base64url). */
  get id(): string {
    return b64url(this.credentialId);
  }

  /** The public key as a COSE_Key (EC2, ES256, P-256). */
  cosePublicKey(): Buffer {
    const jwk = this.publicKey.export({ format: "jwk" });
    return encodeCbor(
      new Map<number, CborValue>([
        [1, 2], // kty: EC2
        [3, -7], // alg: ES256
        [-1, 1], // crv: P-256
        [-2, Buffer.from(jwk.x!, "base64url")],
        [-3, Buffer.from(jwk.y!, "base64url")],
      ]),
    );
  }

  clientDataJSON(type: "webauthn.create" | "webauthn.get", challenge: string, overrides: ClientDataOverrides = {}): Buffer {
    return Buffer.from(
      JSON.stringify({
        type: overrides.type ?? type,
        challenge: overrides.challenge ?? challenge,
        origin: overrides.origin ?? this.origin,
        crossOrigin: false,
      }),
    );
  }

  /** rpIdHash || flags || signCount [|| attestedCredentialData]. */
  authenticatorData(rpId: string, flagByte: number, counter: number, attested?: Buffer): Buffer {
    const head = Buffer.alloc(37);
    sha256(rpId).copy(head, 0);
    head[32] = flagByte;
    head.writeUInt32BE(counter >>> 0, 33);
    return attested ? Buffer.concat([head, attested]) : head;
  }

  /** AAGUID (zeros) || credentialId length || credentialId || COSE public key. */
  attestedCredentialData(): Buffer {
    const length = Buffer.alloc(2);
    length.writeUInt16BE(this.credentialId.length);
    return Buffer.concat([Buffer.alloc(16), length, this.credentialId, this.cosePublicKey()]);
  }

  /** A registration response ("none" attestation) to `options`, as navigator.credentials.create() returns it. */
  register(
    options: Pick<PublicKeyCredentialCreationOptionsJSON, "challenge" | "rp" | "user">,
    overrides: ClientDataOverrides & AuthenticatorDataOverrides = {},
  ): RegistrationResponseJSON {
    const rpId = overrides.rpId ?? options.rp.id ?? this.rpId;
    const counter = overrides.counter ?? this.counter;
    const authData = this.authenticatorData(
      rpId,
      overrides.flags ?? flags.userPresent | flags.userVerified | flags.attestedCredentialData,
      counter,
      this.attestedCredentialData(),
    );
    const attestationObject = encodeCbor(
      new Map<string, CborValue>([
        ["fmt", "none"],
        ["attStmt", new Map()],
        ["authData", authData],
      ]),
    );
    this.userHandle = options.user.id;
    return {
      id: this.id,
      rawId: this.id,
      type: "public-key",
      response: {
        clientDataJSON: b64url(this.clientDataJSON("webauthn.create", options.challenge, overrides)),
        attestationObject: b64url(attestationObject),
        transports: ["internal"],
      },
      clientExtensionResults: {},
      authenticatorAttachment: "platform",
    };
  }

  /**
   * An assertion for `options` (navigator.credentials.get()): an ECDSA P-256
   * SHA-256 signature, DER-encoded, over authenticatorData || SHA-256(clientDataJSON).
   */
  assert(options: Pick<PublicKeyCredentialRequestOptionsJSON, "challenge" | "rpId">, overrides: AssertionOverrides = {}): AuthenticationResponseJSON {
    const rpId = overrides.rpId ?? options.rpId ?? this.rpId;
    let counter: number;
    if (overrides.counter === undefined) counter = ++this.counter;
    else counter = overrides.counter;
    const authData = this.authenticatorData(rpId, overrides.flags ?? flags.userPresent | flags.userVerified, counter);
    const clientData = this.clientDataJSON("webauthn.get", options.challenge, overrides);
    const signature = sign("sha256", Buffer.concat([authData, sha256(clientData)]), this.privateKey);
    const id = overrides.credentialId ? b64url(overrides.credentialId) : this.id;
    const userHandle = overrides.userHandle === undefined ? this.userHandle : overrides.userHandle;
    return {
      id,
      rawId: id,
      type: "public-key",
      response: {
        clientDataJSON: b64url(clientData),
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        ...(userHandle === null || userHandle === undefined ? {} : { userHandle }),
      },
      clientExtensionResults: {},
      authenticatorAttachment: "platform",
    };
  }
}
