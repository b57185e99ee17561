/**
 * The one error handler. Expected failures keep their 4xx and a message safe
 * to show; anything else is a 500 whose details stay in the log with the
 * request id. Browser pages get an HTML page, everything else JSON
 * {error, error_description}.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { AppError } from "../errors.ts";
import { SemaphoreFullError } from "../auth/semaphore.ts";
import { renderErrorPage } from "../views.ts";

/** Routes whose callers are people with browsers. */
export function isBrowserRoute(url: string): boolean {
  return (
    url.startsWith("/interaction/") ||
    url === "/account" ||
    url.startsWith("/account/") ||
    url.startsWith("/account?") ||
    isDevicePage(url) ||
    isEmailFlowPage(url)
  );
}

/** The pages of the email flows (account/lifecycle-routes.ts): their URLs carry single-use tokens. */
function isEmailFlowPage(url: string): boolean {
  return (
    url === "/password/forgot" ||
    url.startsWith("/password/forgot?") ||
    url.startsWith("/password/reset/") ||
    url === "/register" ||
    url.startsWith("/register?") ||
    url.startsWith("/email/verify/") ||
    url.startsWith("/invitation/")
  );
}

/** The device verification page and its resume URL (RFC 8628 section 3.3), not the device's own JSON endpoint /device/auth. */
function isDevicePage(url: string): boolean {
  return url === "/device" || url.startsWith("/device?") || (url.startsWith("/device/") && !url.startsWith("/device/auth"));
}

interface Described {
  status: number;
  code: string;
  message: string;
}

type ValidationIssue = { instancePath: string; keyword: string; message?: string; params: Record<string, unknown> };

/**
 * A schema violation named by its place in the request: `body.jwks.keys.0 has
 * an unknown property "d"` rather than Ajv's `body must NOT have additional properties`.
 */
function validationMessage(error: { validation?: ValidationIssue[]; validationContext?: string }): string | undefined {
  const first = error.validation?.[0];
  if (!first) return undefined;
  const where = `${error.validationContext ?? "request"}${first.instancePath.replaceAll("/", ".")}`;
  if (first.keyword === "additionalProperties") return `${where} has an unknown property "${String(first.params.additionalProperty)}"`;
  return `${where} ${first.message ?? "is invalid"}`;
}

/** oidc-provider's errors carry an OAuth code, a status and `expose`. */
function describe(error: unknown): Described | undefined {
  if (error instanceof AppError) return { status: error.status, code: error.code, message: error.message };
  const e = error as Partial<FastifyError> & { status?: number; expose?: boolean; error?: string; error_description?: string };
  const status = e.statusCode ?? e.status;
  if (typeof status !== "number" || status < 400 || status >= 500) return undefined;
  if (e.error && e.expose !== false) {
    const message = e.error === "invalid_request" && /interaction session|cookie not found/i.test(e.error_description ?? "")
      ? "This sign-in page has expired or was opened in another browser. Go back to the application and start again."
      : (e.error_description ?? e.error);
    return { status, code: e.error, message };
  }
  const invalid = validationMessage(e);
  if (invalid) return { status, code: "invalid_request", message: invalid };
  const code = status === 413 ? "payload_too_large" : status === 415 ? "unsupported_media_type" : status === 404 ? "not_found" : "invalid_request";
  return { status, code, message: e.message ?? code };
}

const titles: Record<number, string> = { 400: "Bad request", 401: "Not signed in", 403: "Forbidden", 404: "Not found", 409: "Conflict", 413: "Too large", 429: "Too many requests", 503: "Busy" };

/** JSON endpoints under browser paths (passkey ceremonies) answer JSON. */
function wantsHtml(request: FastifyRequest): boolean {
  return isBrowserRoute(request.url) && !(request.headers["content-type"] ?? "").includes("application/json");
}

function send(request: FastifyRequest, reply: FastifyReply, { status, code, message }: Described) {
  reply.code(status);
  if (wantsHtml(request)) {
    return reply
      .type("text/html")
      .header("cache-control", "no-store")
      .send(renderErrorPage(titles[status] ?? (status >= 500 ? "Something went wrong" : "Error"), message, request.id));
  }
  return reply.send({ error: code, error_description: message });
}

async function errorHandler(app: FastifyInstance): Promise<void> {
  app.setErrorHandler((error, request, reply) => {
    // Too much argon2 work queued (auth/semaphore.ts): the caller may retry shortly.
    if (error instanceof SemaphoreFullError) {
      reply.header("retry-after", String(error.retryAfterSeconds));
      return send(request, reply, { status: 503, code: "temporarily_unavailable", message: "The server is busy. Try again in a moment." });
    }
    const described = describe(error);
    if (described) return send(request, reply, described);
    request.log.error({ err: error }, "unhandled error");
    return send(request, reply, { status: 500, code: "server_error", message: `Internal error (request id ${request.id}).` });
  });

  app.setNotFoundHandler((request, reply) =>
    send(request, reply, { status: 404, code: "not_found", message: `No route for ${request.method} ${request.url.split("?")[0]}` }),
  );
}

export const errorHandlerPlugin = fp(errorHandler, { name: "error-handler" });
