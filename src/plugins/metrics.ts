/** GET /metrics in Prometheus format, and per-route request counts and durations. */
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import type { AppContext } from "../context.ts";

async function metricsRoutes(app: FastifyInstance, { metrics }: AppContext): Promise<void> {
  app.addHook("onResponse", async (request, reply) => {
    // Once per request, hijacked ones included (the provider's routes in
    // plugins/oidc.ts): Fastify runs onResponse when the response finishes.
    // The provider's catch-all route is labelled "oidc".
    const url = request.routeOptions.url;
    const route = url === undefined ? "unmatched" : url === "/*" ? "oidc" : url;
    metrics.requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.requestDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  app.get("/metrics", async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}

export const metricsPlugin = fp(metricsRoutes, { name: "metrics" });
