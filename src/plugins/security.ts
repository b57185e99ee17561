/**
 * Security headers for our own routes (docs/SECURITY.md): a strict CSP with
 * per-response nonces, frame-ancestors 'none', Referrer-Policy no-referrer,
 * and no-store on every page that can carry a secret. oidc-provider's
 * responses get their headers in plugins/oidc.ts, because they bypass
 * Fastify's reply.
 */
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import helmet from "@fastify/helmet";
import { isBrowserRoute } from "./error-handler.ts";

async function security(app: FastifyInstance, { https }: { https: boolean }): Promise<void> {
  await app.register(helmet, {
    enableCSPNonces: true,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'strict-dynamic'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", "data:"],
        connectSrc: ["'self'"],
        baseUri: ["'none'"],
        // No form-action: browsers apply it to the redirects that follow a
        // form post, and sign-in ends in a redirect to the client's redirect_uri.
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
        ...(https ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    referrerPolicy: { policy: "no-referrer" },
    frameguard: { action: "deny" },
    strictTransportSecurity: https ? { maxAge: 31536000, includeSubDomains: true } : false,
    crossOriginEmbedderPolicy: false,
  });

  app.addHook("onSend", async (request, reply) => {
    if (isBrowserRoute(request.url)) reply.header("cache-control", "no-store");
  });
}

export const securityPlugin = fp(security, { name: "security" });
