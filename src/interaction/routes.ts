/**
 * The sign-in and consent pages of oidc-provider's interactions (OpenID
 * Connect Core 1.0, sections 3.1.2.3 and 3.1.2.4: authenticate the end-user,
 * obtain consent). Thin handlers: validate the body with its schema, read the
 * interaction, call a service, render or redirect.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import formbody from "@fastify/formbody";
import type { AppContext } from "../context.ts";
import { renderPage } from "../views.ts";
import { Type, type Static } from "@sinclair/typebox";
import type { AuthenticationResponseJSON } from "@simplewebauthn/server";
import { signInWithPasskey, signInWithPassword } from "../services/sign-in.ts";
import { expiredForm, secondFactorStep } from "./second-factor.ts";
import { scopeDescriptions } from "../scopes.ts";
import { describeResourceScopes } from "../services/resource-servers.ts";
import { AppError } from "../errors.ts";
import { perAddressLimit } from "../plugins/rate-limit.ts";
import { findUserProfile } from "../db/users.ts";
import { relyingPartyFor } from "../auth/passkeys.ts";
import { startPasskeyAuthentication } from "../services/passkeys.ts";
import { PasskeyOptionsBody, PasskeySignInBody } from "../auth/webauthn-schemas.ts";
import { deviceConfirmationReason, displayUserCode } from "../oidc/device-flow.ts";
import { accountClientId } from "../oidc/account-client.ts";
import { emailEnabled } from "../email/outbox.ts";
import { takeSignInTicket } from "../services/account-lifecycle.ts";
import { recordAuditEvent } from "../services/audit.ts";
import { clearSignInTicket, readCookie, signInTicketCookie } from "../account/browser-cookies.ts";

type Params = { uid: string };

// Form bodies: every field a bounded string (a repeated field arrives as an
// array and is refused). The CSRF token stays optional here so that a form
// without it gets its 403 from the CSRF check. Passwords are bounded before
// the policy's own limit (256 characters) so that argon2 never sees more.
const Csrf = Type.String({ maxLength: 200 });
const LoginBody = Type.Object(
  { csrf: Type.Optional(Csrf), email: Type.Optional(Type.String({ maxLength: 320 })), password: Type.Optional(Type.String({ maxLength: 1024 })) },
  { additionalProperties: false },
);
const ConsentBody = Type.Object(
  { csrf: Type.Optional(Csrf), decision: Type.Union([Type.Literal("allow"), Type.Literal("deny")]) },
  { additionalProperties: false },
);

const invalidCredentials = "Invalid email or password.";

function tooMany(reply: FastifyReply, retryAfterSeconds: number) {
  return reply
    .code(429)
    .header("retry-after", String(retryAfterSeconds))
    .send({ error: "too_many_requests", error_description: "Too many failed attempts. Try again later." });
}

export async function interactionRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  await app.register(formbody);
  const { csrf, host } = ctx;

  async function details(request: FastifyRequest, reply: FastifyReply) {
    const provider = host.provider;
    const interaction = await provider.interactionDetails(request.raw, reply.raw);
    const client = await provider.Client.find(String(interaction.params.client_id));
    if (!client) throw new AppError("invalid_request", "The application that sent you here is not registered.");
    return { provider, interaction, client };
  }

  // Links to the email flows, only when they can work (docs/account-lifecycle.md).
  const signInLinks = {
    forgotPassword: emailEnabled(ctx.config),
    register: emailEnabled(ctx.config) && ctx.config.registration === "open",
  };
  const secure = ctx.config.issuer.startsWith("https:");

  function renderSignIn(reply: FastifyReply, uid: string, clientName: string | undefined, extra: Record<string, unknown> = {}) {
    return reply.type("text/html").send(
      renderPage("sign-in", { uid, clientName, csrf: csrf.token(uid), nonce: reply.cspNonce.script, passkeyScript: true, ...signInLinks, ...extra }),
    );
  }

  const secondStep = secondFactorStep(app, ctx, details);

  app.get<{ Params: Params; Querystring: { recovery?: string } }>("/interaction/:uid", async (request, reply) => {
    const { provider, interaction, client } = await details(request, reply);
    const uid = interaction.uid;
    if (interaction.prompt.name === "login") {
      // After a password reset or an accepted invitation (account/lifecycle-routes.ts):
      // a sign-in ticket completes the account client's sign-in, once.
      const ticket = client.clientId === accountClientId ? readCookie(request, signInTicketCookie) : undefined;
      if (ticket) {
        clearSignInTicket(reply, secure);
        const taken = await takeSignInTicket(ctx.lifecycle, ticket);
        if (taken) {
          await recordAuditEvent(ctx.db, {
            type: (await secondStep.isDue(interaction, taken.userId, taken.amr)) ? "sign_in.first_factor" : "sign_in.succeeded",
            actorType: "user",
            actorId: taken.userId,
            userId: taken.userId,
            ip: request.ip,
            userAgent: request.headers["user-agent"],
            clientId: client.clientId,
            data: { method: "email_link" },
          });
          // The link proved the mailbox, not the second factor: a user with
          // an authenticator app (or under MFA=required) still goes through it.
          return reply.redirect(await secondStep.afterFirstFactor(request, reply, interaction, taken.userId, taken.amr), 303);
        }
      }
      if (await secondStep.renderPending(request, reply, interaction, client.clientName, request.query.recovery === "1")) return reply;
      // login_hint (OpenID Connect Core 1.0 section 3.1.2.1) fills in the email, e.g. when /account asks to sign in again.
      const hint = interaction.params.login_hint;
      return renderSignIn(reply, uid, client.clientName, typeof hint === "string" ? { email: hint.slice(0, 320) } : {});
    }
    if (interaction.prompt.name === "consent") {
      // A device sign-in (RFC 8628) is always confirmed, first-party or not (oidc/device-flow.ts).
      const device = interaction.prompt.reasons.includes(deviceConfirmationReason);
      if (!device && (client.first_party === true || !needsConsentPage(interaction))) {
        // First-party clients are trusted by the operator, and a consent
        // prompt with nothing new to grant that the client did not ask for
        // (see oidc/offline-access.ts) needs no page.
        const grantId = await grantRequested(provider, interaction);
        const to = await provider.interactionResult(request.raw, reply.raw, { consent: { grantId } }, { mergeWithLastSubmission: true });
        return reply.redirect(to, 303);
      }
      const accountId = interaction.session?.accountId;
      const user = accountId ? await findUserProfile(ctx.db, accountId) : null;
      const details = interaction.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
      const scopes = [
        ...(details.missingOIDCScope ?? []).map((name) => ({ name, description: scopeDescriptions[name] ?? name })),
        // The APIs' scopes, with the descriptions their resource servers give.
        ...(await describeResourceScopes(ctx.db, details.missingResourceScopes ?? {})),
      ];
      const page = { uid, clientName: client.clientName ?? client.clientId, scopes, email: user?.email ?? "", csrf: csrf.token(uid) };
      if (device) {
        const code = interaction.deviceCode ? await provider.DeviceCode.find(interaction.deviceCode, { ignoreExpiration: true }) : undefined;
        return reply.type("text/html").send(renderPage("device-consent", { ...page, userCode: code ? displayUserCode(code.userCode) : "" }));
      }
      return reply.type("text/html").send(renderPage("consent", page));
    }
    throw new AppError("invalid_request", `unsupported interaction prompt ${interaction.prompt.name}`);
  });

  app.post<{ Params: Params; Body: Static<typeof LoginBody> }>("/interaction/:uid/login", { schema: { body: LoginBody } }, async (request, reply) => {
    const { provider, interaction, client } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.body?.csrf)) throw new AppError("forbidden", expiredForm);
    if (interaction.prompt.name !== "login") throw new AppError("invalid_request", "This sign-in step is already done.");
    const email = request.body.email ?? "";
    const password = request.body.password ?? "";

    const result = await signInWithPassword(ctx.signIn, {
      email,
      password,
      ip: request.ip,
      userAgent: request.headers["user-agent"],
      clientId: client.clientId,
      secondFactorDue: (user, amr) => secondStep.isDue(interaction, user.id, amr),
    });
    if (result.ok) return reply.redirect(await secondStep.afterFirstFactor(request, reply, interaction, result.user.id, result.amr), 303);
    if (result.reason === "busy") {
      reply.code(503).header("retry-after", String(result.retryAfterSeconds));
      return renderSignIn(reply, interaction.uid, client.clientName, { email, error: "The server is busy. Try again in a moment." });
    }
    if (result.reason === "rate_limited") {
      const minutes = Math.ceil(result.retryAfterSeconds / 60);
      reply.code(429).header("retry-after", String(result.retryAfterSeconds));
      return renderSignIn(reply, interaction.uid, client.clientName, {
        email,
        error: `Too many failed attempts. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`,
      });
    }
    reply.code(401);
    return renderSignIn(reply, interaction.uid, client.clientName, { email, error: invalidCredentials });
  });

  const rp = relyingPartyFor(ctx.config.issuer);

  // Usernameless passkey sign-in: options, then the signed assertion (JSON,
  // with the interaction's CSRF token in a header). Each options request
  // writes a challenge row: limited per client address like /auth.
  const passkeyOptionsLimit = perAddressLimit(app, "passkey-options", ctx.config.authRateLimitPerIp);
  app.post<{ Params: Params }>("/interaction/:uid/passkey/options", { onRequest: passkeyOptionsLimit, schema: { body: PasskeyOptionsBody } }, async (request, reply) => {
    const { interaction } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.headers["x-csrf-token"])) throw new AppError("forbidden", "missing or invalid CSRF token");
    if (interaction.prompt.name !== "login") throw new AppError("invalid_request", "This sign-in step is already done.");
    return startPasskeyAuthentication(ctx.db, rp, ctx.storedIds, interaction.uid);
  });

  app.post<{ Params: Params; Body: PasskeySignInBody }>("/interaction/:uid/passkey", { schema: { body: PasskeySignInBody } }, async (request, reply) => {
    const { provider, interaction, client } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.headers["x-csrf-token"])) throw new AppError("forbidden", "missing or invalid CSRF token");
    if (interaction.prompt.name !== "login") throw new AppError("invalid_request", "This sign-in step is already done.");
    const result = await signInWithPasskey(ctx.signIn, {
      rp,
      storedIds: ctx.storedIds,
      interactionUid: interaction.uid,
      challengeId: request.body.challengeId,
      response: request.body.response as AuthenticationResponseJSON,
      ip: request.ip,
      userAgent: request.headers["user-agent"],
      clientId: client.clientId,
      log: request.log,
      secondFactorDue: (user, amr) => secondStep.isDue(interaction, user.id, amr),
    });
    if (!result.ok && result.reason === "invalid_credentials") throw new AppError("invalid_request", "This passkey could not be used to sign in.");
    if (!result.ok) return tooMany(reply, result.retryAfterSeconds);
    return { redirectTo: await secondStep.afterFirstFactor(request, reply, interaction, result.user.id, result.amr) };
  });

  app.post<{ Params: Params; Body: Static<typeof ConsentBody> }>("/interaction/:uid/consent", { schema: { body: ConsentBody } }, async (request, reply) => {
    const { provider, interaction } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.body?.csrf)) throw new AppError("forbidden", expiredForm);
    if (interaction.prompt.name !== "consent") throw new AppError("invalid_request", "This consent step is already done.");
    if (request.body.decision !== "allow") {
      const to = await provider.interactionResult(
        request.raw,
        reply.raw,
        { error: "access_denied", error_description: "The user denied the request." },
        { mergeWithLastSubmission: false },
      );
      return reply.redirect(to, 303);
    }
    const grantId = await grantRequested(provider, interaction);
    const to = await provider.interactionResult(request.raw, reply.raw, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return reply.redirect(to, 303);
  });
}

type Provider = AppContext["host"]["provider"];
type Interaction = Awaited<ReturnType<Provider["interactionDetails"]>>;

/**
 * Whether the consent page must be shown: unless the only reason for the
 * consent prompt is one the client did not send (oidc/offline-access.ts adds
 * it) and nothing is missing from the grant. Any other reason, such as
 * oidc-provider's native_client_prompt (a native app's redirect URI can be
 * claimed by another app, so the user confirms every time), shows the page.
 */
function needsConsentPage(interaction: Interaction): boolean {
  const details = interaction.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
  const asked = String(interaction.params.prompt ?? "").split(" ").includes("consent");
  const otherReasons = interaction.prompt.reasons.some((reason) => reason !== "consent_prompt");
  const missing = (details.missingOIDCScope?.length ?? 0) + (details.missingOIDCClaims?.length ?? 0) + Object.keys(details.missingResourceScopes ?? {}).length;
  return asked || otherReasons || missing > 0;
}

/** Adds what the consent prompt says is missing to the (new or existing) grant. */
async function grantRequested(provider: Provider, interaction: Interaction): Promise<string> {
  const accountId = interaction.session?.accountId;
  if (!accountId) throw new AppError("invalid_request", "Sign in first.");
  const clientId = String(interaction.params.client_id);
  const grant = interaction.grantId
    ? ((await provider.Grant.find(interaction.grantId)) ?? new provider.Grant({ accountId, clientId }))
    : new provider.Grant({ accountId, clientId });
  const details = interaction.prompt.details as {
    missingOIDCScope?: string[];
    missingOIDCClaims?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(" "));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(" "));
  return grant.save();
}
