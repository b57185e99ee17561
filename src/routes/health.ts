/** Liveness and readiness probes (SPEC section 11). */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.ts";

export async function healthRoutes(app: FastifyInstance, { db, host }: Pick<AppContext, "db" | "host">): Promise<void> {
  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (request, reply) => {
    const checks = { database: "ok", keys: "ok" };
    try {
      await db.ping();
    } catch (error) {
      request.log.warn({ err: error }, "readiness: database unreachable");
      checks.database = "unreachable";
    }
    // The provider is only ever built with a loaded key set.
    if (!host.provider) checks.keys = "missing";
    const ready = checks.database === "ok" && checks.keys === "ok";
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", checks });
  });
}
