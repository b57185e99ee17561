/**
 * The device authorization grant (RFC 8628) end to end: the real server (as
 * `npm start` runs it) with a temporary SQLite database, a public client made
 * with the real CLI (`clients create --public --grant-types ...device_code`),
 * openid-client as the command-line tool (initiateDeviceAuthorization, then
 * pollDeviceAuthorizationGrant while the user acts), and headless Chromium on
 * /device, the sign-in page and the confirmation, driven by their accessible
 * names (README, "Device flow").
 */
import t, { type Test } from "tap";
import { randomBytes } from "node:crypto";
import * as oidc from "openid-client";
import type { Page } from "playwright-core";
import { launchBrowser, newContext, requireBrowser } from "../helpers/browser.ts";
import { processDatabase } from "../helpers/databases.ts";
import { runCli, startServer } from "../helpers/processes.ts";

const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code";
const wrongCode = "That code is not valid or has expired. Check the code on your device and try again.";

if (requireBrowser(t)) {
  const { env } = await processDatabase(t);
  const server = await startServer(t, env);
  const browser = await launchBrowser(t);

  const tag = randomBytes(4).toString("hex");
  const user = { email: `dee.${tag}@example.test`, password: `tall-lantern-${randomBytes(9).toString("base64url")}` };
  const made = await runCli(["users", "create", "--email", user.email, "--name", "Dee", "--password-stdin"], env, `${user.password}\n`);
  t.equal(made.code, 0, `users create exits 0 ${made.stderr}`);
  const userId = (JSON.parse(made.stdout) as { id: string }).id;

  /** A public client for the device grant, made with the CLI; openid-client's configuration for it. */
  const createDeviceClient = async (t: Test, name: string) => {
    const res = await runCli(["clients", "create", "--name", name, "--public", "--grant-types", `${deviceGrant},refresh_token`], env);
    t.equal(res.code, 0, `clients create exits 0 ${res.stderr}`);
    const created = JSON.parse(res.stdout) as { client_id: string; client_secret?: string };
    t.notOk(created.client_secret, "a public client has no secret");
    const config = await oidc.discovery(new URL(server.url), created.client_id, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    return { clientId: created.client_id, config };
  };

  /** Polls as a CLI would, every second (the default is 5 s: RFC 8628 section 3.2), until the user acts. */
  const poll = (config: oidc.Configuration, response: oidc.DeviceAuthorizationResponse) =>
    oidc.pollDeviceAuthorizationGrant(config, { ...response, interval: 1 });

  /** Opens /device and enters `code` through the page's labels. */
  const enterCode = async (page: Page, code: string) => {
    await page.goto(`${server.url}/device`);
    await page.getByLabel("Code", { exact: true }).fill(code);
    await page.getByRole("button", { name: "Continue", exact: true }).click();
  };

  const signIn = async (page: Page) => {
    await page.getByLabel("Email").fill(user.email);
    await page.getByLabel("Password").fill(user.password);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
  };

  t.test("discovery advertises /device/auth and the device_code grant", async (t) => {
    const meta = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    t.equal(meta.device_authorization_endpoint, `${server.url}/device/auth`);
    t.ok((meta.grant_types_supported as string[]).includes(deviceGrant));
  });

  t.test("Allow: code, sign-in, a confirmation naming the client; the polling CLI receives tokens", async (t) => {
    const client = await createDeviceClient(t, "Acme CLI");
    const response = await oidc.initiateDeviceAuthorization(client.config, { scope: "openid email offline_access" });
    t.equal(response.verification_uri, `${server.url}/device`);
    const polling = poll(client.config, response);

    const page = await (await newContext(t, browser)).newPage();
    await page.goto(response.verification_uri);
    t.ok(await page.getByRole("textbox", { name: "Code", exact: true }).isVisible(), 'the input is labelled "Code"');
    t.ok(await page.getByRole("button", { name: "Continue", exact: true }).isVisible(), 'the button is "Continue"');
    await page.getByLabel("Code", { exact: true }).fill(response.user_code);
    await page.getByRole("button", { name: "Continue", exact: true }).click();
    await page.getByRole("button", { name: "Sign in", exact: true }).waitFor();
    t.match(new URL(page.url()).pathname, /^\/interaction\//, "our sign-in page");
    await signIn(page);

    const allow = page.getByRole("button", { name: "Allow", exact: true });
    await allow.waitFor();
    t.ok(await page.getByRole("button", { name: "Deny", exact: true }).isVisible(), "Deny is offered");
    const text = await page.locator("body").innerText();
    t.match(text, "Acme CLI", "the confirmation names the client");
    t.match(text, response.user_code, "and shows the code to compare with the device");
    await allow.click();
    await page.getByRole("heading", { name: "Device connected" }).waitFor();
    t.match(new URL(page.url()).pathname, /^\/device\//, "the success page is the device flow's own");

    const tokens = await polling;
    t.equal(tokens.claims()?.sub, userId, "the ID token's sub is the user");
    t.ok(tokens.refresh_token, "offline_access: a refresh token");
    const userinfo = await oidc.fetchUserInfo(client.config, tokens.access_token, userId);
    t.equal(userinfo.email, user.email, "the access token works at userinfo");
  });

  t.test("Deny: the polling CLI gets access_denied", async (t) => {
    const client = await createDeviceClient(t, "Deny CLI");
    const response = await oidc.initiateDeviceAuthorization(client.config, { scope: "openid" });
    const polling = poll(client.config, response).then(
      () => undefined,
      (err: unknown) => err as { error?: string },
    );
    const page = await (await newContext(t, browser)).newPage();
    await enterCode(page, response.user_code);
    await signIn(page);
    const deny = page.getByRole("button", { name: "Deny", exact: true });
    await deny.waitFor();
    t.match(await page.locator("body").innerText(), "Deny CLI");
    await deny.click();
    await page.getByRole("heading", { name: "Access denied" }).waitFor();
    t.equal((await polling)?.error, "access_denied");
  });

  t.test("verification_uri_complete: the code filled in, shown to compare, then sign-in and Allow", async (t) => {
    const client = await createDeviceClient(t, "QR TV");
    const response = await oidc.initiateDeviceAuthorization(client.config, { scope: "openid" });
    const polling = poll(client.config, response);
    const page = await (await newContext(t, browser)).newPage();
    // oidc-provider's self-submitting form (form_post) must run under our CSP.
    await page.goto(response.verification_uri_complete!);
    await page.getByRole("heading", { name: "Check the code" }).waitFor();
    t.match(await page.locator("body").innerText(), response.user_code, "the code to compare with the device");
    t.ok(await page.getByRole("button", { name: "Cancel", exact: true }).isVisible(), "Cancel is offered");
    await page.getByRole("button", { name: "Continue", exact: true }).click();
    await signIn(page);
    const allow = page.getByRole("button", { name: "Allow", exact: true });
    await allow.waitFor();
    t.match(await page.locator("body").innerText(), "QR TV");
    await allow.click();
    await page.getByRole("heading", { name: "Device connected" }).waitFor();
    t.equal((await polling).claims()?.sub, userId);
  });

  t.test("a client without the device grant type is refused at /device/auth", async (t) => {
    const res = await runCli(["clients", "create", "--name", "Web app", "--public", "--redirect-uri", "http://127.0.0.1:9/cb"], env);
    t.equal(res.code, 0, res.stderr);
    const { client_id } = JSON.parse(res.stdout) as { client_id: string };
    const answer = await fetch(`${server.url}/device/auth`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id, scope: "openid" }),
    });
    t.equal(answer.status, 400);
    t.equal(((await answer.json()) as { error: string }).error, "unauthorized_client");
  });

  // Last: it leaves this address over its limit for the rest of the window.
  t.test("a wrong code is answered in place; 10 in a row, then 429", async (t) => {
    const page = await (await newContext(t, browser)).newPage();
    for (let i = 1; i <= 10; i++) {
      await enterCode(page, `ZZZZ-ZZZ${"BCDFGHJKLM"[i - 1]}`);
      await page.getByRole("alert").waitFor();
      t.equal((await page.getByRole("alert").innerText()).trim(), wrongCode, `wrong code ${i}: the same message, on the form`);
      t.ok(await page.getByLabel("Code", { exact: true }).isVisible(), "the form is shown again");
    }
    await page.goto(`${server.url}/device`);
    await page.getByLabel("Code", { exact: true }).fill("ZZZZ-ZZZZ");
    const [answer] = await Promise.all([page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/device"), page.getByRole("button", { name: "Continue", exact: true }).click()]);
    t.equal(answer.status(), 429, "the 11th attempt is refused");
    t.ok(Number(await answer.headerValue("retry-after")) > 0, "with Retry-After");
    await page.getByText(/Too many wrong codes/).waitFor();
  });
}
