/**
 * /account: the signed-in user's passkeys, sessions and password (README,
 * Pages). The page reads oidc-provider's session cookie; without a session it
 * sends the browser through sign-in with Gatehouse's own first-party client
 * (response_type=none: a session, no code or token). Sensitive changes
 * (passkeys, password) need a sign-in within REAUTH_MAX_AGE; an older session
 * is sent through sign-in again with prompt=login (OpenID Connect Core 1.0
 * section 3.1.2.1), so a stolen session cookie alone cannot add a way in.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import formbody from "@fastify/formbody";
import type { AppContext } from "../context.ts";
import { renderPage } from "../views.ts";
import { findUserById } from "../db/users.ts";
import { relyingPartyFor } from "../auth/passkeys.ts";
import { finishPasskeyRegistration, listPasskeys, removePasskey, startPasskeyRegistration } from "../services/passkeys.ts";
import { changeOwnPassword, signOutOtherSessions } from "../services/account.ts";
import { sendVerificationEmail } from "../services/account-lifecycle.ts";
import { emailEnabled } from "../email/outbox.ts";
import { listUserSessions } from "../services/access.ts";
import { AppError } from "../errors.ts";
import { accountSignInUrl } from "../oidc/account-client.ts";
import { Type, type Static } from "@sinclair/typebox";
import type { RegistrationResponseJSON } from "@simplewebauthn/server";
import { PasskeyOptionsBody, PasskeyRegistrationBody } from "../auth/webauthn-schemas.ts";
import { confirmTotpSetup, getMfaStatus, regenerateRecoveryCodes, startTotpSetup, totpKeyFingerprint, turnOffTotp } from "../services/mfa.ts";

// Form bodies: every field a bounded string (a repeated field arrives as an
// array and is refused); the CSRF token stays optional so that its absence
// gets the CSRF check's 403.
const Csrf = Type.Optional(Type.String({ maxLength: 200 }));
const CsrfForm = Type.Object({ csrf: Csrf }, { additionalProperties: false });
// `key`: the fingerprint of the key the set-up page showed (services/mfa.ts totpKeyFingerprint).
const CodeForm = Type.Object({ csrf: Csrf, code: Type.Optional(Type.String({ maxLength: 20 })), key: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false });
const PasswordForm = Type.Object(
  { csrf: Csrf, current_password: Type.Optional(Type.String({ maxLength: 1024 })), new_password: Type.Optional(Type.String({ maxLength: 1024 })) },
  { additionalProperties: false },
);

/** Notices shown after a redirect, by code: the query string never carries text. */
const notices: Record<string, string> = {
  "passkey-removed": "The passkey was removed.",
  "signed-out-others": "Your other devices were signed out.",
  "password-changed": "Your password was changed. Other devices were signed out and applications must ask again.",
  "verification-sent": "We sent a verification link to your email.",
  "totp-off": "The authenticator app was turned off. Your recovery codes no longer work.",
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
    const user = await findUserById(ctx.db, accountId);
    if (!user || user.disabled) return undefined;
    const grantIds = Object.values(session.authorizations ?? {}).flatMap((a) => (a.grantId ? [a.grantId] : []));
    // loginTs: when the person last proved who they are in this session (epoch seconds).
    const recent = typeof session.loginTs === "number" && Date.now() / 1000 - session.loginTs <= ctx.config.reauthMaxAge;
    return { user, sessionId: session.jti, sessionIds: ctx.storedIds.candidates(session.jti), grantIds, recent, csrf: ctx.csrf.token(`session:${session.jti}`) };
  }
  type Account = NonNullable<Awaited<ReturnType<typeof signedIn>>>;

  /** Sign-in through the account client; `reauth` asks for a password or passkey even with a session. */
  function signInUrl(reauth?: { email: string }): string {
    return accountSignInUrl(ctx.config.issuer, reauth ? { prompt: "login", loginHint: reauth.email } : {});
  }

  /** Renders /account; errors are rendered here rather than passed through a redirect. */
  async function renderAccount(reply: FastifyReply, account: Account, message: { notice?: string; error?: string } = {}) {
    const [passkeys, sessions, mfa] = await Promise.all([listPasskeys(ctx.db, account.user.id), listUserSessions(ctx.db, account.user.id), getMfaStatus(ctx.db, account.user.id)]);
    return reply.type("text/html").send(
      renderPage("account", {
        user: account.user,
        passkeys,
        sessions: sessions.map((s) => ({ ...s, current: account.sessionIds.includes(s.id) })),
        csrf: account.csrf,
        nonce: reply.cspNonce.script,
        recent: account.recent,
        canResendVerification: !account.user.emailVerified && emailEnabled(ctx.config),
        mfa,
        ...message,
      }),
    );
  }

  /**
   * For sensitive changes: a sign-in within REAUTH_MAX_AGE. A form post is
   * redirected through sign-in (and answered here with true); a JSON call gets
   * 401 with the place to go.
   */
  function reauthenticate(request: FastifyRequest, reply: FastifyReply, account: Account): boolean {
    if (account.recent) return false;
    const location = signInUrl({ email: account.user.email });
    if ((request.headers["content-type"] ?? "").includes("application/json")) {
      reply.code(401).send({ error: "login_required", error_description: "Sign in again to make this change.", location });
    } else {
      reply.redirect(location, 303);
    }
    return true;
  }

  /** For every state change: a session and the CSRF token bound to it. */
  async function requireSignedIn(request: FastifyRequest, reply: FastifyReply, token: unknown) {
    const account = await signedIn(request, reply);
    if (!account) throw new AppError("unauthorized", "Your session has ended. Sign in again.");
    if (!ctx.csrf.verify(`session:${account.sessionId}`, token)) throw new AppError("forbidden", "The form has expired or did not come from this site. Reload the page and try again.");
    return account;
  }

  const where = (request: FastifyRequest) => ({ ip: request.ip, userAgent: request.headers["user-agent"] });

  app.get<{ Querystring: { notice?: string } }>("/account", async (request, reply) => {
    const account = await signedIn(request, reply);
    if (!account) return reply.redirect(signInUrl(), 303);
    const notice = typeof request.query.notice === "string" && Object.hasOwn(notices, request.query.notice) ? notices[request.query.notice] : undefined;
    return renderAccount(reply, account, { notice });
  });

  app.post<{ Body: unknown }>("/account/passkeys/options", { schema: { body: PasskeyOptionsBody } }, async (request, reply) => {
    const account = await requireSignedIn(request, reply, request.headers["x-csrf-token"]);
    if (reauthenticate(request, reply, account)) return reply;
    return startPasskeyRegistration(ctx.db, rp, account.user);
  });

  app.post<{ Body: PasskeyRegistrationBody }>(
    "/account/passkeys",
    { schema: { body: PasskeyRegistrationBody } },
    async (request, reply) => {
      const account = await requireSignedIn(request, reply, request.headers["x-csrf-token"]);
      if (reauthenticate(request, reply, account)) return reply;
      const body = { ...request.body, response: request.body.response as RegistrationResponseJSON };
      const passkey = await finishPasskeyRegistration(ctx.db, rp, account.user, body, where(request), ctx.config);
      return reply.code(201).send(passkey);
    },
  );

  app.post<{ Params: { id: string }; Body: Static<typeof CsrfForm> }>("/account/passkeys/:id/remove", { schema: { body: CsrfForm } }, async (request, reply) => {
    const account = await requireSignedIn(request, reply, request.body?.csrf);
    if (reauthenticate(request, reply, account)) return reply;
    try {
      await removePasskey(ctx.db, request.params.id, account.user.id, { actorType: "user", actorId: account.user.id, ...where(request) }, ctx.config);
    } catch (error) {
      if (error instanceof AppError && error.code === "conflict") return renderAccount(reply.code(409), account, { error: error.message });
      throw error;
    }
    return reply.redirect("/account?notice=passkey-removed", 303);
  });

  app.post<{ Body: Static<typeof CsrfForm> }>("/account/email/verification", { schema: { body: CsrfForm } }, async (request, reply) => {
    const account = await requireSignedIn(request, reply, request.body?.csrf);
    if (!emailEnabled(ctx.config)) throw new AppError("not_found", "Email is off on this server.");
    // Over the address's hourly limit nothing is sent; the notice stays the same.
    await sendVerificationEmail(ctx.lifecycle, account.user, where(request));
    return reply.redirect("/account?notice=verification-sent", 303);
  });

  app.post<{ Body: Static<typeof CsrfForm> }>("/account/sessions/sign-out-others", { schema: { body: CsrfForm } }, async (request, reply) => {
    const { user, sessionIds, grantIds } = await requireSignedIn(request, reply, request.body?.csrf);
    await signOutOtherSessions(ctx.db, user, { sessionIds, grantIds }, where(request));
    return reply.redirect("/account?notice=signed-out-others", 303);
  });

  /**
   * Two-step verification on /account (docs/two-step-verification.md): set up
   * an authenticator app (QR code and key, then a first code turns it on and
   * shows ten recovery codes once), turn it off, generate new recovery codes.
   * Each needs a recent sign-in, like the other sensitive changes.
   */
  const actorOf = (request: FastifyRequest, userId: string) => ({ actorType: "user" as const, actorId: userId, ...where(request) });

  /**
   * With `reuse`, the stored unconfirmed key is shown again, but only if it
   * is the key this page showed (`shownKey`, its fingerprint, when the form
   * sent one): never a key another set-up (a sign-in's) made meanwhile.
   */
  async function renderSetup(reply: FastifyReply, account: Account, reuse: boolean, error?: string, shownKey?: string) {
    let setup = await startTotpSetup(ctx.db, ctx.ring, account.user, ctx.config.issuer, reuse);
    if (reuse && shownKey !== undefined && totpKeyFingerprint(setup.secret) !== shownKey) setup = await startTotpSetup(ctx.db, ctx.ring, account.user, ctx.config.issuer, false);
    return reply.type("text/html").send(
      renderPage("totp-setup", { csrf: account.csrf, action: "/account/totp/confirm", cancel: "/account", secret: setup.secret, key: totpKeyFingerprint(setup.secret), qrSvg: setup.qrSvg, error }),
    );
  }

  app.post<{ Body: Static<typeof CsrfForm> }>("/account/totp/setup", { schema: { body: CsrfForm } }, async (request, reply) => {
    const account = await requireSignedIn(request, reply, request.body?.csrf);
    if (reauthenticate(request, reply, account)) return reply;
    return renderSetup(reply, account, false);
  });

  app.post<{ Body: Static<typeof CodeForm> }>("/account/totp/confirm", { schema: { body: CodeForm } }, async (request, reply) => {
    const account = await requireSignedIn(request, reply, request.body?.csrf);
    if (reauthenticate(request, reply, account)) return reply;
    const shownKey = request.body.key;
    const codes = await confirmTotpSetup(ctx.db, ctx.ring, account.user.id, request.body.code ?? "", actorOf(request, account.user.id), ctx.config, shownKey);
    if (!codes) return renderSetup(reply.code(400), account, true, "That code is not right. Check the time on your device and try the current code.", shownKey);
    return reply.type("text/html").send(renderPage("recovery-codes", { codes, intro: "Two-step verification is on." }));
  });

  app.post<{ Body: Static<typeof CsrfForm> }>("/account/totp/disable", { schema: { body: CsrfForm } }, async (request, reply) => {
    const account = await requireSignedIn(request, reply, request.body?.csrf);
    if (reauthenticate(request, reply, account)) return reply;
    await turnOffTotp(ctx.db, account.user.id, actorOf(request, account.user.id), ctx.config);
    return reply.redirect("/account?notice=totp-off", 303);
  });

  app.post<{ Body: Static<typeof CsrfForm> }>("/account/recovery-codes", { schema: { body: CsrfForm } }, async (request, reply) => {
    const account = await requireSignedIn(request, reply, request.body?.csrf);
    if (reauthenticate(request, reply, account)) return reply;
    const codes = await regenerateRecoveryCodes(ctx.db, account.user.id, actorOf(request, account.user.id));
    return reply.type("text/html").send(renderPage("recovery-codes", { codes, intro: "New recovery codes: the old ones no longer work." }));
  });

  app.post<{ Body: Static<typeof PasswordForm> }>("/account/password", { schema: { body: PasswordForm } }, async (request, reply) => {
    const account = await requireSignedIn(request, reply, request.body?.csrf);
    if (reauthenticate(request, reply, account)) return reply;
    try {
      await changeOwnPassword(
        ctx.db,
        { argon2: ctx.config.argon2, limiter: ctx.limiter, config: ctx.config },
        account.user,
        { currentPassword: request.body.current_password ?? "", newPassword: request.body.new_password ?? "", currentSessionIds: account.sessionIds },
        where(request),
      );
    } catch (error) {
      if (error instanceof AppError && (error.code === "invalid_password" || error.code === "too_many_requests")) {
        return renderAccount(reply.code(error.status), account, { error: error.message });
      }
      throw error;
    }
    return reply.redirect("/account?notice=password-changed", 303);
  });
}

