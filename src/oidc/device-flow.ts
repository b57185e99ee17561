/**
 * The device authorization grant (RFC 8628) in oidc-provider's terms: the
 * pages of its verification URI (`/device`) rendered with our views, the
 * consent check that makes the user confirm every device sign-in, and the
 * mark that tells the wrong-code limiter (plugins/oidc.ts) a user code was
 * right. The protocol (device_authorization endpoint, polling at the token
 * endpoint) is oidc-provider's own (features.deviceFlow).
 */
import type { IncomingMessage } from "node:http";
import { interactionPolicy, type Configuration, type KoaContextWithOIDC } from "oidc-provider";
import { renderPage } from "../views.ts";

type DeviceFlow = NonNullable<NonNullable<Configuration["features"]>["deviceFlow"]>;

/**
 * User codes: oidc-provider's base-20 alphabet (no vowels, so no words) in
 * two groups of four, the example of RFC 8628 section 6.1: 20^8, about
 * 2^34.6 codes, against at most `maxFailures` guesses per address and
 * window (auth/user-code-limiter.ts).
 */
export const userCodeCharset = "base-20";
export const userCodeMask = "****-****";

/** A normalised user code (what is stored) as the user saw it. */
export function displayUserCode(normalized: string): string {
  const chars = [...normalized];
  return [...userCodeMask].map((c) => (c === "*" ? (chars.shift() ?? "") : c)).join("");
}

/** The reason our consent check gives; the consent page shows the device confirmation for it. */
export const deviceConfirmationReason = "device_confirmation";

/**
 * Every device sign-in is confirmed on a page naming the client, even for a
 * first-party client or scopes already granted: the user code may have come
 * from someone else's device (RFC 8628 section 5.4, remote phishing), and the
 * confirmation is the user's one chance to notice. Asked until the
 * interaction's result carries a consent, like oidc-provider's own
 * native_client_prompt check.
 */
export function deviceConfirmationCheck(): interactionPolicy.Check {
  return new interactionPolicy.Check(deviceConfirmationReason, "device sign-ins are confirmed by the End-User", "interaction_required", (ctx) =>
    ctx.oidc.deviceCode && !ctx.oidc.result?.consent ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT,
  );
}

const userCodeAccepted = Symbol("gatehouse.userCodeAccepted");

/**
 * koa middleware (provider.use) that marks a POST to the verification URI
 * whose user code named a live device code (oidc-provider sets the
 * DeviceCode entity only then: lib/actions/code_verification.js). Every
 * other POST there (unknown, expired or used code, no code) is a wrong code.
 */
export async function markAcceptedUserCode(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  const oidc = (ctx as Partial<KoaContextWithOIDC>).oidc;
  if (oidc?.route === "code_verification" && ctx.method === "POST" && oidc.entities.DeviceCode) {
    (ctx.req as IncomingMessage & { [userCodeAccepted]?: boolean })[userCodeAccepted] = true;
  }
}

/**
 * koa middleware (provider.use): a client not registered for the device
 * grant is answered unauthorized_client at the device authorization endpoint,
 * the code RFC 8628 section 3.2 takes from RFC 6749 section 5.2 ("not
 * authorized to use this authorization grant type"); oidc-provider 9 says
 * invalid_request (lib/actions/authorization/client.js, checkClientGrantType).
 */
export async function deviceGrantNotAllowedAsUnauthorizedClient(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  const oidc = (ctx as Partial<KoaContextWithOIDC>).oidc;
  const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
  if (oidc?.route !== "device_authorization" || ctx.status !== 400 || typeof body !== "object" || body === null) return;
  if (body.error === "invalid_request" && String(body.error_description).endsWith("is not allowed for this client")) {
    ctx.body = { ...body, error: "unauthorized_client" };
  }
}

/** Whether oidc-provider found a live device code for this request's user code (once it has answered). */
export function userCodeAcceptedOf(req: IncomingMessage): boolean {
  return (req as IncomingMessage & { [userCodeAccepted]?: boolean })[userCodeAccepted] === true;
}

/** The form's anti-forgery secret, kept by oidc-provider in the browser's session (lib/shared/xsrf.js). */
function xsrfOf(ctx: KoaContextWithOIDC): string {
  return String((ctx.oidc.session?.state as { secret?: string } | undefined)?.secret ?? "");
}

function clientNameOf(ctx: KoaContextWithOIDC): string | undefined {
  const client = ctx.oidc.client;
  return client ? (client.clientName ?? client.clientId) : undefined;
}

function send(ctx: KoaContextWithOIDC, view: string, data: Record<string, unknown>) {
  ctx.type = "html";
  // The form carries the xsrf secret.
  ctx.set("cache-control", "no-store");
  ctx.body = renderPage(view, data);
}

/** The same answer for every wrong code, so a page tells a guesser nothing about codes that exist. */
const wrongCode = "That code is not valid or has expired. Check the code on your device and try again.";

/**
 * oidc-provider's deviceFlow options: our charset and mask, and its three
 * page hooks rendering our views (the built-in pages are bare examples meant to be replaced, oidc-provider
 * docs, features.deviceFlow). The input form carries `confirm=yes`: the user
 * confirms after signing in, on the consent page, which names the client
 * (deviceConfirmationCheck), rather than before.
 */
export function deviceFlowFeature(): DeviceFlow {
  return {
    enabled: true,
    charset: userCodeCharset,
    mask: userCodeMask,
    async userCodeInputSource(ctx, _form, out, err) {
      const action = ctx.oidc.urlFor("code_verification");
      if (err?.name === "AbortedError") {
        // The user chose Deny (on the confirmation, or Cancel before signing in): the device gets access_denied.
        return send(ctx, "device-done", { title: "Access denied", message: `${clientNameOf(ctx) ?? "The device"} was not given access. You can close this page.` });
      }
      let error: string | undefined;
      if (err && ("userCode" in err || err.name === "NoCodeError" || err.name === "NotFoundError" || err.name === "ExpiredError" || err.name === "AlreadyUsedError")) {
        error = wrongCode;
      } else if (out && /xsrf|form details/.test(String(out.error_description))) {
        // A POST without the form's secret: refused like our own forms' CSRF failures.
        ctx.status = 403;
        error = "The form has expired or did not come from this site. Enter the code again.";
      } else if (out) {
        // Details stay in the log (oidc-provider's server_error event, oidc/events.ts); the page gives the request id.
        error = "The code could not be checked. Try again.";
      }
      const code = err && "userCode" in err && typeof err.userCode === "string" ? err.userCode.slice(0, 40) : "";
      const requestId = out && !error?.startsWith("That code") ? String(ctx.res.getHeader("x-request-id") ?? "") : "";
      send(ctx, "device", { action, xsrf: xsrfOf(ctx), error, code, requestId });
    },
    // Reached from verification_uri_complete (RFC 8628 section 3.3.1), whose
    // code the user did not type: show it to compare with the device's.
    async userCodeConfirmSource(ctx, _form, client, _deviceInfo, userCode) {
      send(ctx, "device-check", { action: ctx.oidc.urlFor("code_verification"), xsrf: xsrfOf(ctx), userCode, clientName: client.clientName ?? client.clientId });
    },
    async successSource(ctx) {
      send(ctx, "device-done", { title: "Device connected", message: `${clientNameOf(ctx) ?? "Your device"} is signed in. You can close this page and return to your device.` });
    },
  };
}
