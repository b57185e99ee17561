/**
 * What we observe of oidc-provider's work: tokens issued (metrics) and the
 * reuse of a rotated-out refresh token, which oidc-provider answers by
 * revoking the whole grant; we log it, audit it and count it (SPEC section 5).
 */
import type Provider from "oidc-provider";
import type { FastifyBaseLogger } from "fastify";
import type { Database } from "../db/database.ts";
import type { Metrics } from "../metrics.ts";
import { recordAuditEvent } from "../services/audit.ts";

export function observeProvider(provider: Provider, { db, metrics, log }: { db: Database; metrics: Metrics; log: FastifyBaseLogger }): void {
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
    recordAuditEvent(db, {
      type: "refresh_token.reused",
      actorType: "client",
      actorId: event.clientId,
      clientId: event.clientId,
      userId: event.accountId,
      ip: ctx.ip,
      userAgent: ctx.get("user-agent"),
      data: { grant_id: event.grantId, grant_revoked: true },
    }).catch((err) => log.error({ err }, "could not audit refresh token reuse"));
  });

  provider.on("server_error", (_ctx, error) => log.error({ err: error }, "oidc-provider server error"));
  provider.on("backchannel.error", (_ctx, error, client) =>
    log.warn({ err: error, clientId: client.clientId }, "back-channel logout notification failed"),
  );
}
