/**
 * Refresh tokens without `prompt=consent` (OpenID Connect Core 1.0 section
 * 11). oidc-provider drops `offline_access` from an authorization request
 * unless its prompt includes consent, and offers no hook for the spec's
 * "unless other conditions for processing the request permitting offline
 * access are in place". Gatehouse's conditions are its consent policy: a
 * first-party client, or a user who consents to offline_access on the consent
 * page (and then need not be asked again). So, for an authorization request
 * (or PAR) whose client may use refresh tokens and is allowed offline_access,
 * the request is treated as asking for consent: the scope survives, the
 * consent prompt runs, and the interaction routes show the consent page only
 * when something is not yet granted or the client itself sent prompt=consent
 * (see interaction/routes.ts). prompt=none requests are left alone.
 */
import type Provider from "oidc-provider";

const authorizationRoutes = new Set(["authorization", "pushed_authorization_request"]);

interface ContextLike {
  route?: string;
  params?: { scope?: unknown };
  client?: { scope?: string; grantTypeAllowed(type: string): boolean };
}

/** Whether this request's offline_access is to be processed as if prompt=consent had been sent. */
function impliesConsent(oidc: ContextLike, prompts: Set<string>): boolean {
  if (!oidc.route || !authorizationRoutes.has(oidc.route) || prompts.has("none") || prompts.has("consent")) return false;
  const requested = typeof oidc.params?.scope === "string" ? oidc.params.scope.split(" ") : [];
  const client = oidc.client;
  return requested.includes("offline_access") && !!client?.grantTypeAllowed("refresh_token") && (client.scope ?? "").split(" ").includes("offline_access");
}

/** Installs the rule on one provider instance (its OIDCContext class is its own). */
export function processOfflineAccessByConsentPolicy(provider: Provider): void {
  const proto = provider.OIDCContext.prototype as object;
  const original = Object.getOwnPropertyDescriptor(proto, "prompts")?.get;
  if (!original) throw new Error("oidc-provider's OIDCContext has no prompts getter: check offline-access.ts against this oidc-provider version");
  Object.defineProperty(proto, "prompts", {
    configurable: true,
    get(this: ContextLike) {
      const prompts = original.call(this) as Set<string>;
      if (impliesConsent(this, prompts)) prompts.add("consent");
      return prompts;
    },
  });
}
