/**
 * Mounts oidc-provider at the issuer's root through a route-level catch-all:
 * our own routes (/healthz, /interaction, /admin, ...) win by Fastify's
 * routing, and everything else is handed to the provider (mounting it as
 * middleware at "/" would swallow every route, oidc-provider issue #728).
 */
import type { FastifyInstance } from "fastify";
import type { ProviderHost } from "../oidc/provider-host.ts";

export async function oidcPlugin(app: FastifyInstance, { host }: { host: ProviderHost }): Promise<void> {
  // oidc-provider reads request bodies itself: leave the stream untouched.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, _payload, done) => done(null));

  app.all("/*", (request, reply) => {
    reply.hijack();
    reply.raw.setHeader("x-request-id", request.id);
    host.callback(request.raw, reply.raw);
  });
}
