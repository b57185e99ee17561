/**
 * The one error handler: JSON {error, error_description} with the right 4xx
 * for expected failures; for anything else a 500 whose details stay in the
 * log with the request id.
 */
import type { FastifyError, FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { AppError } from "../errors.ts";

async function errorHandler(app: FastifyInstance): Promise<void> {
  app.setErrorHandler((error: FastifyError | AppError, request, reply) => {
    if (error instanceof AppError) {
      return reply.code(error.status).send({ error: error.code, error_description: error.message });
    }
    const status = (error as FastifyError).statusCode;
    if (typeof status === "number" && status >= 400 && status < 500) {
      const code = status === 413 ? "payload_too_large" : status === 415 ? "unsupported_media_type" : "invalid_request";
      return reply.code(status).send({ error: code, error_description: error.message });
    }
    request.log.error({ err: error }, "unhandled error");
    return reply.code(500).send({ error: "server_error", error_description: `internal error (request id ${request.id})` });
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: "not_found", error_description: `no route for ${request.method} ${request.url.split("?")[0]}` });
  });
}

export const errorHandlerPlugin = fp(errorHandler, { name: "error-handler" });
