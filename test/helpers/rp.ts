/**
 * A minimal relying party for the E2E tier: a real HTTP server on 127.0.0.1
 * for the browser to land on (its redirect and post-logout URIs), and
 * openid-client (panva) for everything protocol: discovery, the authorization
 * URL with PKCE S256, state and nonce, and the code exchange, which validates
 * the ID token (signature against the JWKS, iss, aud, nonce, exp).
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { Test } from "tap";
import * as oidc from "openid-client";

export interface RelyingParty {
  origin: string;
  /** The registered redirect_uri. */
  callbackUrl: string;
  /** The registered post_logout_redirect_uri. */
  postLogoutUrl: string;
  /** Every request the browser made to this server, full URLs, in order. */
  visits: URL[];
}

/** Starts the RP's HTTP server on a free loopback port; closed at teardown. */
export async function startRelyingParty(t: Test): Promise<RelyingParty> {
  const visits: URL[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url ?? "/", `http://${req.headers.host}`);
    visits.push(url);
    if (url.pathname === "/cb" || url.pathname === "/logged-out") {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      res.end("ok");
    } else {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end("not found");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, callbackUrl: `${origin}/cb`, postLogoutUrl: `${origin}/logged-out`, visits };
}

/** Discovers the issuer as a confidential client (client_secret_basic); http on loopback is allowed. */
export function discoverClient(issuer: string, clientId: string, clientSecret: string): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(issuer), clientId, clientSecret, oidc.ClientSecretBasic(clientSecret), {
    execute: [oidc.allowInsecureRequests],
  });
}

export interface PendingAuthorization {
  /** Where to send the browser. */
  url: URL;
  codeVerifier: string;
  state: string;
  nonce: string;
}

/** Builds an authorization request with PKCE S256, a state and a nonce. */
export async function beginAuthorization(
  config: oidc.Configuration,
  redirectUri: string,
  params: { scope: string; prompt?: string } & Record<string, string>,
): Promise<PendingAuthorization> {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: "S256",
    state,
    nonce,
    ...params,
  });
  return { url, codeVerifier, state, nonce };
}

/** Exchanges the code in `callbackUrl`, checking state, nonce, PKCE and the ID token. */
export function completeAuthorization(
  config: oidc.Configuration,
  callbackUrl: string | URL,
  pending: PendingAuthorization,
): Promise<oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers> {
  return oidc.authorizationCodeGrant(config, new URL(callbackUrl), {
    pkceCodeVerifier: pending.codeVerifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
    idTokenExpected: true,
  });
}
