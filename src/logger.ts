/**
 * Logger options for Fastify's pino: structured JSON with the request id, and
 * every place a secret could appear redacted (docs/SECURITY.md).
 */
import type { FastifyServerOptions } from "fastify";
import type { Config } from "./config.ts";

/** Query parameters whose values never reach the log. */
const secretParams = new Set([
  "code",
  "token",
  "access_token",
  "refresh_token",
  "id_token",
  "id_token_hint",
  "client_secret",
  "client_assertion",
  "code_verifier",
  "password",
  "request",
  "state",
  "login_hint",
]);

/** Paths whose next segment is a single-use email link's token (account/lifecycle-routes.ts). */
const linkTokenPath = /^\/(password\/reset|email\/verify|invitation)\/[^/?]+/;

/** The request path with email links' tokens and the values of secret query parameters replaced. */
export function redactUrl(rawUrl: string): string {
  const url = rawUrl.replace(linkTokenPath, "/$1/[Redacted]");
  const q = url.indexOf("?");
  if (q === -1) return url;
  const params = new URLSearchParams(url.slice(q + 1));
  for (const key of params.keys()) if (secretParams.has(key)) params.set(key, "[Redacted]");
  return `${url.slice(0, q)}?${params.toString()}`;
}

export function loggerOptions(config: Pick<Config, "logLevel">): NonNullable<FastifyServerOptions["logger"]> {
  return {
    level: config.logLevel,
    redact: {
      paths: [
        "req.headers.authorization",
        "req.headers.cookie",
        'res.headers["set-cookie"]',
        "*.password",
        "*.client_secret",
        "*.access_token",
        "*.refresh_token",
        "*.id_token",
        "*.token",
        "*.secret",
      ],
      censor: "[Redacted]",
    },
    serializers: {
      req(request) {
        return {
          method: request.method,
          url: redactUrl(request.url),
          remoteAddress: request.ip,
          userAgent: request.headers["user-agent"],
        };
      },
    },
  };
}
