/**
 * Several Gatehouse instances on one database behind a round-robin "load
 * balancer" (a small HTTP proxy on 127.0.0.1): the topology of the README.
 * The issuer is the proxy's URL, as it would be the load balancer's.
 */
import { auditKeyOf } from "../../src/services/audit.ts";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import type { Test } from "tap";
import type { FastifyInstance } from "fastify";
import { buildApp } from "../../src/app.ts";
import type { Config } from "../../src/config.ts";
import type { Database, DatabaseProvider } from "../../src/db/database.ts";
import { loadMasterKeyRing, type MasterKeyRing } from "../../src/crypto/master-keys.ts";
import { ensureSigningKeys } from "../../src/oidc/keys.ts";
import { createTestDatabase } from "./databases.ts";
import { testConfig } from "./config.ts";
import { reservePort } from "./processes.ts";

export interface Instance {
  app: FastifyInstance;
  db: Database;
  /** The instance's own address, bypassing the balancer. */
  url: string;
}

export interface Cluster {
  /** The issuer: the balancer's URL. */
  url: string;
  config: Config;
  ring: MasterKeyRing;
  instances: Instance[];
  /** Which instance served each request through the balancer, in order. */
  served: number[];
}

export async function startCluster(t: Test, provider: DatabaseProvider, size = 2, env: Record<string, string> = {}): Promise<Cluster> {
  const database = await createTestDatabase(t, provider);
  // The balancer's port is the issuer's: held until the balancer listens.
  const { port, release } = await reservePort();
  t.teardown(release); // if the cluster fails to start (releasing twice is harmless)
  const url = `http://127.0.0.1:${port}`;
  const config = testConfig(t, { DATABASE_URL: database.url, ISSUER: url, PORT: String(port), ...env });
  const ring = loadMasterKeyRing(config);
  const instances: Instance[] = [];
  for (let i = 0; i < size; i++) {
    // Each instance has its own connection pool, as separate processes would.
    const db = await database.open({ auditKey: auditKeyOf(ring) });
    if (i === 0) await ensureSigningKeys(db, ring);
    const app = await buildApp({ config, db, ring, logger: false });
    t.teardown(() => app.close());
    // Any free port: only the balancer's is known beforehand (it is the issuer's).
    await app.listen({ port: 0, host: "127.0.0.1" });
    const { port: own } = app.server.address() as AddressInfo;
    instances.push({ app, db, url: `http://127.0.0.1:${own}` });
  }

  const served: number[] = [];
  let next = 0;
  const balancer = createServer((req, res) => {
    const index = next++ % instances.length;
    served.push(index);
    const target = new URL(instances[index]!.url);
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await release();
  await new Promise<void>((resolve) => balancer.listen(port, "127.0.0.1", resolve));
  t.teardown(() => new Promise<void>((resolve) => balancer.close(() => resolve())));
  return { url, config, ring, instances, served };
}
