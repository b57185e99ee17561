/**
 * What we observe of oidc-provider's work: tokens issued (metrics), failed
 * client authentications (logged with their reason, counted), and the reuse
 * of a rotated-out refresh token, which oidc-provider answers by revoking the
 * whole grant; we log it, audit it and count it (RFC 9700 section 4.14).
 */
import type Provider from "oidc-provider";
import type { KoaContextWithOIDC } from "oidc-provider";
import type { FastifyBaseLogger } from "fastify";
import type { Database } from "../db/database.ts";
import type { Metrics } from "../metrics.ts";
import { recordAuditEvent } from "../services/audit.ts";

/** Audit writes started from provider events; closing the app waits for them (drain). */
export interface ProviderObserver {
  drain(): Promise<void>;
}

export function observeProvider(provider: Provider, { db, metrics, log }: { db: Database; metrics: Metrics; log: FastifyBaseLogger }): ProviderObserver {
  const pending = new Set<Promise<void>>();

  provider.on("grant.success", (ctx) => {
    metrics.tokensIssued.inc({ grant_type: String(ctx.oidc.params?.grant_type ?? "unknown") });
  });

  provider.on("grant.error", (ctx, error) => {
    // oidc-provider's InvalidGrant keeps its specific reason in error_detail.
    const detail = (error as { error_detail?: string }).error_detail;
    if (detail !== "refresh token already used") return;
    const token = ctx.oidc.entities.RefreshToken;
    const event = { grantId: token?.grantId, clientId: ctx.oidc.client?.clientId, accountId: token?.accountId };
    log.warn(event, "rotated-out refresh token presented again: grant revoked");
    metrics.refreshTokenReuse.inc();
    // The provider's event listeners are synchronous: the write is tracked, not awaited.
    const write = recordAuditEvent(db, {
      type: "refresh_token.reused",
      actorType: "client",
      actorId: event.clientId,
      clientId: event.clientId,
      userId: event.accountId,
      ip: ctx.ip,
      userAgent: ctx.get("user-agent"),
      data: { grant_id: event.grantId, grant_revoked: true },
    })
      .catch((err) => log.error({ err }, "could not audit refresh token reuse"))
      .finally(() => pending.delete(write));
    pending.add(write);
  });

  // invalid_client says nothing to the client about why (RFC 6749 section
  // 5.2); the operator gets the reason, and never the secret or assertion.
  const clientAuthFailed = (endpoint: string) => (ctx: KoaContextWithOIDC, error: Error) => {
    const e = error as { error?: string; error_detail?: string };
    if (e.error !== "invalid_client") return;
    metrics.clientAuthFailures.inc({ endpoint });
    const claimed = ctx.oidc?.client?.clientId ?? (typeof ctx.oidc?.params?.client_id === "string" ? ctx.oidc.params.client_id.slice(0, 200) : undefined);
    log.info({ endpoint, clientId: claimed, reason: e.error_detail ?? e.error, ip: ctx.ip }, "client authentication failed");
  };
  for (const [event, endpoint] of [
    ["grant.error", "token"],
    ["introspection.error", "introspection"],
    ["revocation.error", "revocation"],
    ["pushed_authorization_request.error", "par"],
  ] as const) {
    provider.on(event as "grant.error", clientAuthFailed(endpoint));
  }

  provider.on("server_error", (_ctx, error) => log.error({ err: error }, "oidc-provider server error"));
  provider.on("backchannel.error", (_ctx, error, client) =>
    log.warn({ err: error, clientId: client.clientId }, "back-channel logout notification failed"),
  );

  return {
    async drain() {
      await Promise.allSettled([...pending]);
    },
  };
}
