/**
 * Attack: any confidential client could introspect any token (RFC 7662),
 * learning whose it is (sub), what it allows (scope) and which client holds
 * it: a leaked token becomes a lookup service for any registered client, and
 * a client can check tokens it found in logs. Introspection answers for a
 * token only to the client it was issued to; anyone else gets
 * `active: false`, exactly as for an unknown token (RFC 7662 section 2.2).
 */
import t from "tap";
import * as oidc from "openid-client";
import { makeClient, startApp } from "../helpers/http-flow.ts";
import { signIn } from "../helpers/admin.ts";
import { discoverClient } from "../helpers/rp.ts";
import { createClient } from "../../src/services/clients.ts";

t.test("introspection answers only to the token's own client", async (t) => {
  const running = await startApp(t);
  const victim = await signIn(running, { client: await makeClient(running, { name: "Victim app", firstParty: true }) });
  const snoop = await makeClient(running, { name: "Snooping app" });
  const service = await createClient(running.db, running.ring, { name: "Batch job", grantTypes: ["client_credentials"], scope: "admin:read" });
  const serviceConfig = await discoverClient(running.url, service.client_id, service.client_secret!);
  const serviceToken = (await oidc.clientCredentialsGrant(serviceConfig, { scope: "admin:read" })).access_token;

  const tokens = {
    "the victim's access token (code flow)": { owner: victim.client.config, value: victim.accessToken },
    "the victim's refresh token": { owner: victim.client.config, value: victim.refreshToken! },
    "a client_credentials token": { owner: serviceConfig, value: serviceToken },
  };
  for (const [label, { owner, value }] of Object.entries(tokens)) {
    const own = await oidc.tokenIntrospection(owner, value);
    t.equal(own.active, true, `${label}: active for its own client`);
    const other = await oidc.tokenIntrospection(snoop.config, value);
    t.same(other, { active: false }, `${label}: another confidential client learns only active: false`);
  }

  t.test("the JWT introspection response (RFC 9701) says the same", async (t) => {
    const res = await fetch(`${running.url}/token/introspection`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`${snoop.clientId}:${snoop.clientSecret}`).toString("base64")}`,
        accept: "application/token-introspection+jwt",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ token: victim.accessToken }),
    });
    t.equal(res.status, 200);
    const [, payload] = (await res.text()).split(".");
    t.same(JSON.parse(Buffer.from(payload!, "base64url").toString()).token_introspection, { active: false });
  });
});
