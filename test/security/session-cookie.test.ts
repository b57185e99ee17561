/**
 * Attack: a session cookie named plainly (`_session`) can be planted or
 * overwritten by any sibling subdomain (Domain=example.test) or by a
 * plain-http response on the same host: cookie tossing, which fixes a victim
 * onto the attacker's session or shadows theirs. On an https issuer the
 * session cookie carries the `__Host-` prefix, which browsers accept only
 * with Secure, Path=/ and no Domain (RFC 6265bis section 4.1.3.2), so only
 * this host over TLS can set it.
 */
import t, { type Test } from "tap";
import * as oidc from "openid-client";
import { createClient } from "../../src/services/clients.ts";
import { createUser } from "../../src/services/users.ts";
import { buildTestApp, csrfToken, injectBehindTls, strongPassword, uniqueEmail } from "../helpers/http-flow.ts";

/** A sign-in through app.inject, as a browser behind the TLS proxy would send it; every Set-Cookie line kept. */
async function signInFlow(t: Test, issuer: string, env: Record<string, string>) {
  const { app, db, config, ring } = await buildTestApp(t, { env: { ISSUER: issuer, ...env } });
  const callbackUri = "https://rp.example.test/cb";
  const created = await createClient(db, ring, { name: "Cookie app", redirectUris: [callbackUri], scope: "openid email", firstParty: true });
  const password = strongPassword();
  const user = await createUser(db, config.argon2, { email: uniqueEmail("cookie"), password });
  const { inject, setCookies, cookies } = injectBehindTls(app, issuer);
  const query = new URLSearchParams({
    client_id: created.client_id,
    redirect_uri: callbackUri,
    response_type: "code",
    scope: "openid email",
    state: oidc.randomState(),
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: "S256",
  });
  const auth = await inject("GET", `/auth?${query}`);
  const interaction = String(auth.headers.location);
  const page = await inject("GET", interaction);
  const login = await inject("POST", `${interaction}/login`, { csrf: csrfToken(page.body), email: user.email, password });
  t.equal(login.statusCode, 303, "signed in");
  let location = String(login.headers.location);
  for (let hop = 0; hop < 4 && !location.startsWith(callbackUri); hop++) {
    location = String((await inject("GET", new URL(location, issuer).pathname)).headers.location);
  }
  t.ok(location.startsWith(`${callbackUri}?`), "back at the client with a code");
  return { inject, setCookies, cookies };
}

t.test("an https issuer names the session cookie __Host-session: Secure, Path=/, no Domain", async (t) => {
  const { inject, setCookies, cookies } = await signInFlow(t, "https://id.example.test", { TRUST_PROXY: "true" });
  t.same(setCookies.filter((line) => /^_session(\.sig)?=/.test(line)), [], "no unprefixed _session cookie");
  for (const name of ["__Host-session", "__Host-session.sig"]) {
    const lines = setCookies.filter((line) => line.startsWith(`${name}=`));
    t.ok(lines.length > 0, `${name} was set`);
    for (const line of lines) {
      const attributes = line.toLowerCase().split(";").map((a) => a.trim());
      t.ok(attributes.includes("secure"), `${name}: Secure`);
      t.ok(attributes.includes("path=/"), `${name}: Path=/`);
      t.notOk(attributes.some((a) => a.startsWith("domain=")), `${name}: no Domain`);
      t.ok(attributes.includes("httponly"), `${name}: HttpOnly`);
      t.ok(attributes.includes("samesite=lax"), `${name}: SameSite=Lax`);
    }
  }
  t.ok(cookies.has("__Host-session"), "the browser keeps it");
  const account = await inject("GET", "/account");
  t.equal(account.statusCode, 200, "the account page finds the session by its new name");
  t.match(account.body, /<form/, "and shows the signed-in page");
});

t.test("an http issuer (development) keeps _session: __Host- needs Secure", async (t) => {
  const { setCookies } = await signInFlow(t, "http://localhost:3000", {});
  t.ok(setCookies.some((line) => line.startsWith("_session=")), "_session was set");
  t.notOk(setCookies.some((line) => line.startsWith("__Host-")), "no __Host- cookie without TLS");
});
