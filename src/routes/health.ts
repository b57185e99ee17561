/**
 * Liveness and readiness probes (README, "Behind a TLS-terminating proxy").
 * Ready means the database answers and the running provider has a current
 * signing key for every algorithm of the key set: without one, ID tokens of
 * the clients registered for that algorithm cannot be signed.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";
import { missingCurrentAlgs } from "../oidc/keys.ts";

export async function healthRoutes(app: FastifyInstance, { db, host }: Pick<AppContext, "db" | "host">): Promise<void> {
  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (request, reply) => {
    const checks: Record<string, string> = { database: "ok", keys: "ok" };
    try {
      await db.ping();
    } catch (error) {
      request.log.warn({ err: error }, "readiness: database unreachable");
      checks.database = "unreachable";
    }
    const missing = missingCurrentAlgs(host.keySet);
    if (missing.length) checks.keys = `no current key for ${missing.join(", ")}`;
    const ready = checks.database === "ok" && checks.keys === "ok";
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", checks });
  });
}
