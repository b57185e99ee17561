/**
 * The device authorization grant (RFC 8628) over HTTP, without a browser:
 * a CLI-like public client starts the flow at /device/auth and polls the
 * token endpoint with openid-client; a browser-like HTTP client enters the
 * code at /device, signs in and confirms on the page naming the client.
 * Runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set.
 */
import t from "tap";
import * as oidc from "openid-client";
import { createClient, deviceCodeGrantType } from "../../src/services/clients.ts";
import { providers } from "../helpers/databases.ts";
import { Browser, csrfToken, errorParagraph, last, makeUser, redirectUri, startApp, type Response, type RunningApp } from "../helpers/http-flow.ts";

/** A public client registered for the device grant, as `gatehouse clients create --public --grant-types ...` makes it. */
async function makeDeviceClient(running: RunningApp, name = "Acme CLI", grantTypes = [deviceCodeGrantType, "refresh_token"]) {
  const created = await createClient(running.db, running.ring, { name, public: true, grantTypes, scope: "openid profile email offline_access" });
  const config = await oidc.discovery(new URL(running.url), created.client_id, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  return { clientId: created.client_id, config };
}

/** The xsrf secret of the device page's form. */
function xsrfOf(page: Response): string {
  const match = /name="xsrf" value="([^"]+)"/.exec(page.body);
  if (!match) throw new Error(`no xsrf in the page: ${page.body.slice(0, 500)}`);
  return match[1]!;
}

/** Opens /device, submits `code`; returns the chain of responses (following redirects within the issuer). */
async function enterCode(browser: Browser, code: string): Promise<Response[]> {
  const page = await browser.request("/device");
  return browser.follow("/device", { form: { xsrf: xsrfOf(page), user_code: code, confirm: "yes" } });
}

async function startDevice(client: { config: oidc.Configuration }, scope = "openid email offline_access") {
  return oidc.initiateDeviceAuthorization(client.config, { scope });
}

for (const provider of providers(t)) {
  t.test(`${provider}: device flow over HTTP`, async (t) => {
    const running = await startApp(t, { provider });
    const user = await makeUser(running, { name: "Dee Vice" });

    t.test("discovery advertises the device authorization endpoint and grant type", async (t) => {
      const meta = (await (await fetch(`${running.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      t.equal(meta.device_authorization_endpoint, `${running.url}/device/auth`);
      t.ok((meta.grant_types_supported as string[]).includes(deviceCodeGrantType));
    });

    t.test("Allow: the polling client receives tokens for the user", async (t) => {
      const client = await makeDeviceClient(running);
      const response = await startDevice(client);
      t.match(response.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/, "base-20, two groups of four (RFC 8628 section 6.1)");
      t.equal(response.verification_uri, `${running.url}/device`);

      const pending = await fetch(`${running.url}/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: deviceCodeGrantType, device_code: response.device_code, client_id: client.clientId }),
      });
      t.equal(pending.status, 400);
      t.equal(((await pending.json()) as { error: string }).error, "authorization_pending", "before the user confirms");

      const browser = new Browser(running.url);
      let page = last(await enterCode(browser, response.user_code.toLowerCase().replace("-", " ")));
      t.match(page.body, /id="sign-in-form"/, "a right code (any case, any separator) leads to the sign-in page");
      page = last(await browser.submit(page, { email: user.email, password: user.password }));
      t.match(page.body, /Allow access on a device/, "then the confirmation");
      t.match(page.body, /Acme CLI/, "naming the client");
      t.match(page.body, new RegExp(response.user_code), "and the code");
      page = last(await browser.submit(page, { decision: "allow" }));
      t.equal(page.status, 200);
      t.match(page.body, /Device connected/);

      const tokens = await oidc.pollDeviceAuthorizationGrant(client.config, { ...response, interval: 0 } as typeof response);
      t.equal(tokens.claims()?.sub, user.id, "the ID token names the user");
      t.ok(tokens.refresh_token, "offline_access gives a refresh token");
      const userinfo = await oidc.fetchUserInfo(client.config, tokens.access_token, user.id);
      t.equal(userinfo.email, user.email, "the access token works at userinfo");
    });
  });
}
