/**
 * The sign-in and consent pages of oidc-provider's interactions (SPEC section
 * 9). Thin handlers: read the interaction, call a service, render or redirect.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import formbody from "@fastify/formbody";
import type { AppContext } from "../context.ts";
import { renderPage } from "../views.ts";
import { signInWithPassword } from "../services/sign-in.ts";
import { scopeDescriptions } from "./scopes.ts";
import { AppError } from "../errors.ts";
import { findUserById } from "../db/users.ts";
import { relyingPartyFor } from "../auth/passkeys.ts";
import { auditPasskeyFailure, finishPasskeyAuthentication, startPasskeyAuthentication } from "../services/passkeys.ts";

type Params = { uid: string };
type LoginBody = { csrf?: string; email?: string; password?: string };
type ConsentBody = { csrf?: string; decision?: string };
type PasskeyBody = { challengeId: string; response: Parameters<typeof finishPasskeyAuthentication>[4]["response"] };

const passkeyBodySchema = {
  type: "object",
  required: ["challengeId", "response"],
  properties: {
    challengeId: { type: "string", maxLength: 64 },
    response: {
      type: "object",
      required: ["id", "rawId", "response", "type"],
      properties: {
        id: { type: "string", maxLength: 1024 },
        rawId: { type: "string", maxLength: 1024 },
        type: { const: "public-key" },
        response: { type: "object" },
      },
    },
  },
} as const;

const invalidCredentials = "Invalid email or password.";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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

  function renderSignIn(reply: FastifyReply, uid: string, clientName: string | undefined, extra: Record<string, unknown> = {}) {
    return reply.type("text/html").send(
      renderPage("sign-in", { uid, clientName, csrf: csrf.token(uid), nonce: reply.cspNonce.script, passkeyScript: true, ...extra }),
    );
  }

  app.get<{ Params: Params }>("/interaction/:uid", async (request, reply) => {
    const { provider, interaction, client } = await details(request, reply);
    const uid = interaction.uid;
    if (interaction.prompt.name === "login") return renderSignIn(reply, uid, client.clientName);
    if (interaction.prompt.name === "consent") {
      if (client.first_party === true) {
        // First-party clients are trusted by the operator: no consent page.
        const grantId = await grantRequested(provider, interaction);
        const to = await provider.interactionResult(request.raw, reply.raw, { consent: { grantId } }, { mergeWithLastSubmission: true });
        return reply.redirect(to, 303);
      }
      const accountId = interaction.session?.accountId;
      const user = accountId ? await findUserById(ctx.db.prisma, accountId) : null;
      const details = interaction.prompt.details as { missingOIDCScope?: string[] };
      const scopes = (details.missingOIDCScope ?? []).map((name) => ({ name, description: scopeDescriptions[name] ?? name }));
      return reply.type("text/html").send(renderPage("consent", { uid, clientName: client.clientName ?? client.clientId, scopes, email: user?.email ?? "", csrf: csrf.token(uid) }));
    }
    throw new AppError("invalid_request", `unsupported interaction prompt ${interaction.prompt.name}`);
  });

  app.post<{ Params: Params; Body: LoginBody }>("/interaction/:uid/login", async (request, reply) => {
    const { provider, interaction, client } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.body?.csrf)) throw new AppError("forbidden", "The form has expired or did not come from this site. Go back and try again.");
    if (interaction.prompt.name !== "login") throw new AppError("invalid_request", "This sign-in step is already done.");
    const email = typeof request.body.email === "string" ? request.body.email.slice(0, 320) : "";
    const password = typeof request.body.password === "string" ? request.body.password : "";

    const result = await signInWithPassword(
      { db: ctx.db, limiter: ctx.limiter, argon2: ctx.config.argon2, onOutcome: (o) => ctx.metrics.signIns.inc({ method: "password", outcome: o }) },
      { email, password, ip: request.ip, userAgent: request.headers["user-agent"], clientId: client.clientId },
    );
    if (result.ok) {
      const to = await provider.interactionResult(
        request.raw,
        reply.raw,
        { login: { accountId: result.user.id, amr: ["pwd"] } },
        { mergeWithLastSubmission: false },
      );
      return reply.redirect(to, 303);
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
  // with the interaction's CSRF token in a header).
  app.post<{ Params: Params }>("/interaction/:uid/passkey/options", async (request, reply) => {
    const { interaction } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.headers["x-csrf-token"])) throw new AppError("forbidden", "missing or invalid CSRF token");
    if (interaction.prompt.name !== "login") throw new AppError("invalid_request", "This sign-in step is already done.");
    return startPasskeyAuthentication(ctx.db, rp, ctx.storedIds, interaction.uid);
  });

  app.post<{ Params: Params; Body: PasskeyBody }>("/interaction/:uid/passkey", { schema: { body: passkeyBodySchema } }, async (request, reply) => {
    const { provider, interaction, client } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.headers["x-csrf-token"])) throw new AppError("forbidden", "missing or invalid CSRF token");
    if (interaction.prompt.name !== "login") throw new AppError("invalid_request", "This sign-in step is already done.");
    const where = { ip: request.ip, userAgent: request.headers["user-agent"], clientId: client.clientId };
    // Until the credential names its user, only the address's limit applies.
    const byIp = await ctx.limiter.check(undefined, request.ip);
    if (byIp.blocked) return tooMany(reply, byIp.retryAfterSeconds);
    const result = await finishPasskeyAuthentication(ctx.db, rp, ctx.storedIds, interaction.uid, request.body, where, request.log);
    if (!result.ok) {
      const { delayMs } = await ctx.limiter.recordFailure(result.user?.email, request.ip);
      await auditPasskeyFailure(ctx.db, result.reason, result.user?.id, where);
      ctx.metrics.signIns.inc({ method: "passkey", outcome: "failure" });
      await sleep(delayMs);
      throw new AppError("invalid_request", "This passkey could not be used to sign in.");
    }
    // A locked account stays locked for passkeys too (SPEC section 10).
    const byAccount = await ctx.limiter.check(result.user.email, request.ip);
    if (byAccount.blocked) return tooMany(reply, byAccount.retryAfterSeconds);
    await ctx.limiter.recordSuccess(result.user.email, request.ip);
    ctx.metrics.signIns.inc({ method: "passkey", outcome: "success" });
    const redirectTo = await provider.interactionResult(
      request.raw,
      reply.raw,
      { login: { accountId: result.user.id, amr: result.userVerified ? ["pop", "user"] : ["pop"] } },
      { mergeWithLastSubmission: false },
    );
    return { redirectTo };
  });

  app.post<{ Params: Params; Body: ConsentBody }>("/interaction/:uid/consent", async (request, reply) => {
    const { provider, interaction } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.body?.csrf)) throw new AppError("forbidden", "The form has expired or did not come from this site. Go back and try again.");
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
