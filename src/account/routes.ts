/**
 * /account (SPEC section 9): the signed-in user's passkeys, sessions and
 * password. The page reads oidc-provider's session cookie; without a session
 * it sends the browser through sign-in with Gatehouse's own first-party
 * client (response_type=none: a session, no code or token).
 */
import { randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import formbody from "@fastify/formbody";
import type { AppContext } from "../context.ts";
import { renderPage } from "../views.ts";
import { findUserById } from "../db/users.ts";
import { relyingPartyFor } from "../auth/passkeys.ts";
import { finishPasskeyRegistration, listPasskeys, removePasskey, startPasskeyRegistration } from "../services/passkeys.ts";
import { changeOwnPassword, signOutOtherSessions } from "../services/account.ts";
import { listUserSessions } from "../services/access.ts";
import { AppError } from "../errors.ts";
import { accountClientId } from "../oidc/account-client.ts";

const notices: Record<string, string> = {
  "passkey-removed": "The passkey was removed.",
  "signed-out-others": "Your other devices were signed out.",
  "password-changed": "Your password was changed. Other devices were signed out and applications must ask again.",
};

export async function accountRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  await app.register(formbody);
  const rp = relyingPartyFor(ctx.config.issuer);

  /**
   * The signed-in user and their session, or undefined. `sessionIds` are the
   * ids the session's row may be stored under (keyed hashes of the cookie
   * value), to recognise it among the listed sessions.
   */
  async function signedIn(request: FastifyRequest, reply: FastifyReply) {
    const session = await ctx.host.provider.Session.get({ req: request.raw, res: reply.raw } as never);
    const accountId = session?.accountId;
    if (!accountId || !session.jti) return undefined;
    const user = await findUserById(ctx.db.prisma, accountId);
    if (!user || user.disabled) return undefined;
    return { user, sessionId: session.jti, sessionIds: ctx.storedIds.candidates(session.jti), csrf: ctx.csrf.token(`session:${session.jti}`) };
  }

  /** For every state change: a session and the CSRF token bound to it. */
  async function requireSignedIn(request: FastifyRequest, reply: FastifyReply, token: unknown) {
    const account = await signedIn(request, reply);
    if (!account) throw new AppError("unauthorized", "Your session has ended. Sign in again.");
    if (!ctx.csrf.verify(`session:${account.sessionId}`, token)) throw new AppError("forbidden", "The form has expired or did not come from this site. Reload the page and try again.");
    return account;
  }

  const where = (request: FastifyRequest) => ({ ip: request.ip, userAgent: request.headers["user-agent"] });

  app.get<{ Querystring: { notice?: string; error?: string } }>("/account", async (request, reply) => {
    const account = await signedIn(request, reply);
    if (!account) {
      const url = new URL("/auth", ctx.config.issuer);
      url.search = new URLSearchParams({
        client_id: accountClientId,
        response_type: "none",
        scope: "openid",
        redirect_uri: `${ctx.config.issuer}/account`,
        state: randomBytes(12).toString("base64url"),
      }).toString();
      return reply.redirect(url.href, 303);
    }
    const [passkeys, sessions] = await Promise.all([listPasskeys(ctx.db, account.user.id), listUserSessions(ctx.db, account.user.id)]);
    return reply.type("text/html").send(
      renderPage("account", {
        user: account.user,
        passkeys,
        sessions: sessions.map((s) => ({ ...s, current: account.sessionIds.includes(s.id) })),
        csrf: account.csrf,
        nonce: reply.cspNonce.script,
        notice: notices[request.query.notice ?? ""],
        error: typeof request.query.error === "string" ? request.query.error.slice(0, 200) : undefined,
      }),
    );
  });

  app.post<{ Body: unknown }>("/account/passkeys/options", async (request, reply) => {
    const { user } = await requireSignedIn(request, reply, request.headers["x-csrf-token"]);
    return startPasskeyRegistration(ctx.db, rp, user);
  });

  app.post<{ Body: { challengeId: string; response: never; name?: string } }>(
    "/account/passkeys",
    {
      schema: {
        body: {
          type: "object",
          required: ["challengeId", "response"],
          properties: {
            challengeId: { type: "string", maxLength: 64 },
            name: { type: "string", maxLength: 100 },
            response: { type: "object", required: ["id", "rawId", "response", "type"], properties: { type: { const: "public-key" } } },
          },
        },
      },
    },
    async (request, reply) => {
      const { user } = await requireSignedIn(request, reply, request.headers["x-csrf-token"]);
      const passkey = await finishPasskeyRegistration(ctx.db, rp, user, request.body, where(request));
      return reply.code(201).send(passkey);
    },
  );

  app.post<{ Params: { id: string }; Body: { csrf?: string } }>("/account/passkeys/:id/remove", async (request, reply) => {
    const { user } = await requireSignedIn(request, reply, request.body?.csrf);
    try {
      await removePasskey(ctx.db, request.params.id, user.id, { actorType: "user", actorId: user.id, ...where(request) });
    } catch (error) {
      if (error instanceof AppError && error.code === "conflict") return reply.redirect(`/account?error=${encodeURIComponent(error.message)}`, 303);
      throw error;
    }
    return reply.redirect("/account?notice=passkey-removed", 303);
  });

  app.post<{ Body: { csrf?: string } }>("/account/sessions/sign-out-others", async (request, reply) => {
    const { user, sessionIds } = await requireSignedIn(request, reply, request.body?.csrf);
    await signOutOtherSessions(ctx.db, user, sessionIds, where(request));
    return reply.redirect("/account?notice=signed-out-others", 303);
  });

  app.post<{ Body: { csrf?: string; current_password?: string; new_password?: string } }>("/account/password", async (request, reply) => {
    const { user, sessionIds } = await requireSignedIn(request, reply, request.body?.csrf);
    try {
      await changeOwnPassword(
        ctx.db,
        { argon2: ctx.config.argon2, limiter: ctx.limiter },
        user,
        { currentPassword: String(request.body.current_password ?? ""), newPassword: String(request.body.new_password ?? ""), currentSessionIds: sessionIds },
        where(request),
      );
    } catch (error) {
      if (error instanceof AppError && (error.code === "invalid_password" || error.code === "too_many_requests")) {
        return reply.redirect(`/account?error=${encodeURIComponent(error.message)}`, 303);
      }
      throw error;
    }
    return reply.redirect("/account?notice=password-changed", 303);
  });
}
