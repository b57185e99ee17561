/**
 * Sealed values are bound to the row and field they protect (AES-GCM
 * additional data): someone who can write to the database but does not hold
 * the master key cannot move a sealed client secret or private key onto
 * another row and have Gatehouse use it there.
 */
import t from "tap";
import { createClientStore } from "../../src/oidc/client-store.ts";
import { loadSigningKeys } from "../../src/oidc/keys.ts";
import { createClient } from "../../src/services/clients.ts";
import { startApp, tokenRequest } from "../helpers/http-flow.ts";

t.test("a client secret copied onto another client's row does not authenticate that client", async (t) => {
  const running = await startApp(t);
  const { prisma } = running.db;
  const input = { grantTypes: ["client_credentials"], scope: "admin:read", redirectUris: [] };
  const a = await createClient(running.db, running.ring, { name: "Client A", ...input });
  const b = await createClient(running.db, running.ring, { name: "Client B", ...input });
  const sanity = await tokenRequest(running, { clientId: a.client_id, clientSecret: a.client_secret! }, { grant_type: "client_credentials", scope: "admin:read" });
  t.equal(sanity.status, 200, "client A authenticates with its own secret");

  // The attacker knows A's secret (say, A is their own client) and can write to the database.
  const rowA = await prisma.client.findUniqueOrThrow({ where: { id: a.client_id } });
  await prisma.client.update({ where: { id: b.client_id }, data: { secretEncrypted: rowA.secretEncrypted } });

  const res = await tokenRequest(running, { clientId: b.client_id, clientSecret: a.client_secret! }, { grant_type: "client_credentials", scope: "admin:read" });
  t.not(res.status, 200, `client B with A's secret is refused (${res.status} ${JSON.stringify(res.json)})`);
  t.notOk(res.json.access_token, "no token is issued");
  await t.rejects(
    createClientStore(running.db, running.ring).findMetadata(b.client_id),
    { code: "master_key_error", message: new RegExp(`Client/${a.client_id}/client_secret.*Client/${b.client_id}/client_secret`) },
    "unsealing B's secret fails, naming both rows",
  );
  t.ok(await createClientStore(running.db, running.ring).findMetadata(a.client_id), "A's own row still opens");
});

t.test("a private key copied onto another signing key's row does not load", async (t) => {
  const running = await startApp(t);
  const { prisma } = running.db;
  const [first, second] = await prisma.signingKey.findMany({ orderBy: { kid: "asc" } });
  if (!first || !second) throw new Error("expected the first start's two signing keys");
  t.ok(await loadSigningKeys(running.db, running.ring), "the key set loads before the swap");

  await prisma.signingKey.update({ where: { kid: second.kid }, data: { privateJwkEncrypted: first.privateJwkEncrypted } });

  await t.rejects(
    loadSigningKeys(running.db, running.ring),
    { code: "master_key_error", message: new RegExp(`SigningKey/${first.kid}/private_jwk.*SigningKey/${second.kid}/private_jwk`) },
    "the key set refuses to load, naming both keys",
  );
});
