/**
 * A relying-party library nobody here wrote, with the settings
 * docs/integrating.md gives for it: Auth0's express-openid-connect in an
 * Express app on 127.0.0.1. Its own defaults otherwise (RS256 ID tokens, PKCE
 * S256 with response_type=code, its callback and logout routes, RP-initiated
 * logout back to baseURL). Sign-in, the ID token's claims as the app sees
 * them, and sign-out, driven over HTTP as a browser would.
 */
import t from "tap";
import express from "express";
import { auth } from "express-openid-connect";
import type { AddressInfo } from "node:net";
import { createClient } from "../../src/services/clients.ts";
import { Browser, isConsentPage, isSignInPage, last, makeUser, startApp } from "../helpers/http-flow.ts";
import { freePort } from "../helpers/processes.ts";

const running = await startApp(t);
const user = await makeUser(running, { name: "Grace Hopper" });

// The application: its base URL is fixed before its client is registered.
const appPort = await freePort();
const appBase = `http://127.0.0.1:${appPort}`;
const registered = await createClient(running.db, running.ring, {
  name: "Express app",
  redirectUris: [`${appBase}/callback`],
  postLogoutRedirectUris: [appBase],
  scope: "openid profile email",
});

const application = express();
application.use(
  auth({
    issuerBaseURL: running.url,
    baseURL: appBase,
    clientID: registered.client_id,
    clientSecret: registered.client_secret!,
    secret: "a-session-secret-for-the-test-app-0123456789",
    authRequired: false,
    // docs/integrating.md: sign out at Gatehouse too, not only in the app.
    idpLogout: true,
    // docs/integrating.md: the library's default response_type (id_token) is not offered.
    authorizationParams: { response_type: "code", scope: "openid profile email" },
  }),
);
application.get("/me", (req, res) => {
  res.json({ authenticated: req.oidc.isAuthenticated(), user: req.oidc.user ?? null });
});
const server = application.listen(appPort, "127.0.0.1");
await new Promise<void>((resolve) => server.once("listening", () => resolve()));
t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
t.equal((server.address() as AddressInfo).port, appPort);

t.test("sign in and out of an express-openid-connect app", async (t) => {
  const app = new Browser(appBase);
  const idp = new Browser(running.url);

  const login = await app.request("/login");
  t.equal(login.status, 302, "the app sends the browser to Gatehouse");
  const authorize = login.location!;
  t.equal(authorize.origin + authorize.pathname, `${running.url}/auth`);
  t.equal(authorize.searchParams.get("response_type"), "code");
  t.equal(authorize.searchParams.get("code_challenge_method"), "S256", "with PKCE, which the library adds itself");

  let page = last(await idp.follow(authorize));
  t.ok(isSignInPage(page.body), "Gatehouse's sign-in page");
  page = last(await idp.submit(page, { email: user.email, password: user.password }));
  t.ok(isConsentPage(page.body), "then the consent page for this third-party app");
  page = last(await idp.submit(page, { decision: "allow" }));
  const callback = page.location!;
  t.equal(callback.origin + callback.pathname, `${appBase}/callback`, "back to the app's callback with a code");

  const finished = await app.request(callback);
  t.equal(finished.status, 302, `the app redeemed the code (${finished.body.slice(0, 200)})`);
  const me = JSON.parse((await app.request("/me")).body) as { authenticated: boolean; user: Record<string, unknown> | null };
  t.equal(me.authenticated, true, "the app has a session");
  t.match(me.user, { sub: user.id, email: user.email, email_verified: false, name: "Grace Hopper" }, "and the ID token's claims, verified by the library (RS256)");

  const logout = await app.request("/logout");
  t.equal(logout.status, 302);
  t.equal(logout.location!.origin + logout.location!.pathname, `${running.url}/session/end`, "RP-initiated logout at Gatehouse");
  const confirm = last(await idp.follow(logout.location!));
  t.match(confirm.body, "Sign out", "the sign-out confirmation");
  // oidc-provider's form: its action and hidden fields, plus the "Sign out" button's name and value.
  const action = /<form id="op\.logoutForm" method="post" action="([^"]+)"/.exec(confirm.body)![1]!.replace(/&amp;/g, "&");
  const fields = Object.fromEntries([...confirm.body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  const signedOut = last(await idp.follow(action, { form: { ...fields, logout: "yes" } }));
  t.equal(signedOut.location?.href.replace(/\/$/, ""), appBase, "and back to the app's base URL");
  t.equal(JSON.parse((await app.request("/me")).body).authenticated, false, "the app's session is gone");
  t.equal((await idp.request("/account")).status, 303, "and so is the Gatehouse session");
});
