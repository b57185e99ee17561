/**
 * The pages of the email flows (docs/account-lifecycle.md): forgotten
 * password, reset, email verification, registration and invitations. Thin
 * handlers over services/account-lifecycle.ts. Every form carries a CSRF
 * token: bound to the link's token on the pages a link opens, and to the form
 * cookie on the anonymous forms (account/browser-cookies.ts). The anonymous
 * forms answer before any account is looked up and do the work afterwards,
 * so the answer and its timing are the same for every address.
 *
 * After a reset or an accepted invitation the browser is signed in by a
 * sign-in ticket: a single-use cookie read by the sign-in page of the
 * account client's authorization request (oidc/account-client.ts), which
 * completes the interaction for the ticket's user, as a password or passkey
 * sign-in would. oidc-provider thus makes the session itself.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { randomInt } from "node:crypto";
import formbody from "@fastify/formbody";
import { Type, type Static } from "@sinclair/typebox";
import type { RegistrationResponseJSON } from "@simplewebauthn/server";
import type { AppContext } from "../context.ts";
import { emailEnabled } from "../email/outbox.ts";
import { renderPage } from "../views.ts";
import { AppError } from "../errors.ts";
import { perAddressLimit } from "../plugins/rate-limit.ts";
import { relyingPartyFor } from "../auth/passkeys.ts";
import { PasskeyOptionsBody, PasskeyRegistrationBody } from "../auth/webauthn-schemas.ts";
import { accountSignInUrl } from "../oidc/account-client.ts";
import { normalizeEmail } from "../services/users.ts";
import { startPasskeyRegistration } from "../services/passkeys.ts";
import {
  acceptInvitationWithPassword,
  acceptInvitationWithPasskey,
  checkRegistration,
  openEmailLink,
  registerAccount,
  requestPasswordReset,
  resetPassword,
  verifyEmail,
  type SignedInResult,
} from "../services/account-lifecycle.ts";
import { formBinding, setSignInTicket } from "./browser-cookies.ts";

// Every field a bounded string; the CSRF token optional so that its absence gets the 403.
const Csrf = Type.Optional(Type.String({ maxLength: 200 }));
const ForgotForm = Type.Object({ csrf: Csrf, email: Type.Optional(Type.String({ maxLength: 320 })) }, { additionalProperties: false });
const NewPasswordForm = Type.Object({ csrf: Csrf, new_password: Type.Optional(Type.String({ maxLength: 1024 })) }, { additionalProperties: false });
const RegisterForm = Type.Object(
  {
    csrf: Csrf,
    email: Type.Optional(Type.String({ maxLength: 320 })),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    password: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);
const TokenParams = Type.Object({ token: Type.String({ maxLength: 100 }) }, { additionalProperties: false });
type TokenParams = Static<typeof TokenParams>;

/** The answer to "Forgot password?", whatever the address (interface text). */
export const forgotPasswordAnswer = "If an account exists for that email, we sent a link.";
/** The answer to a registration, whether or not the address has an account. */
export const registrationAnswer = "We sent a link to that email. Open it to confirm your address; then you can sign in.";

/** The longest random delay before the work of an anonymous form starts. */
export const afterAnswerJitterMs = 1000;

const formExpired = "The form has expired or did not come from this site. Go back and try again.";

export async function lifecycleRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  await app.register(formbody);
  const { config, csrf } = ctx;
  const deps = ctx.lifecycle;
  const secure = config.issuer.startsWith("https:");
  const rp = relyingPartyFor(config.issuer);
  const where = (request: FastifyRequest) => ({ ip: request.ip, userAgent: request.headers["user-agent"] });

  // Work done after the answer (see the module comment); awaited at close.
  // It starts after a random delay of up to a second: work done at once
  // would keep the process busy for the next few milliseconds only after a
  // known address, which a request sent right behind could time.
  const pending = new Set<Promise<void>>();
  function afterAnswer(request: FastifyRequest, what: string, work: () => Promise<void>): void {
    const run = new Promise<void>((resolve) => setTimeout(resolve, randomInt(0, afterAnswerJitterMs)))
      .then(work)
      .catch((err: unknown) => request.log.error({ err }, `${what} failed after the answer was sent`))
      .finally(() => pending.delete(run));
    pending.add(run);
  }
  app.addHook("onClose", async () => {
    await Promise.all([...pending]);
  });

  // Each of these writes rows or sends email: limited per client address (IPv6 per /64).
  const sendLimit = perAddressLimit(app, "email-forms", config.emailRateLimitPerIp);
  const linkLimit = perAddressLimit(app, "email-links", config.authRateLimitPerIp);

  const requireEmailOn = () => {
    if (!emailEnabled(config)) throw new AppError("not_found", "This page does not exist.");
  };
  const requireOpenRegistration = () => {
    if (config.registration !== "open" || !emailEnabled(config)) throw new AppError("not_found", "This page does not exist.");
  };
  const page = (reply: FastifyReply, name: string, data: Record<string, unknown>) => reply.type("text/html").send(renderPage(name, { nonce: reply.cspNonce.script, ...data }));
  // Bound to the link and to this browser (its form cookie): a form prepared
  // in another browser, e.g. the attacker's own reset link posted from their
  // site, is refused (login CSRF).
  const linkBinding = (request: FastifyRequest, reply: FastifyReply, token: string) => `email-link:${token}:${formBinding(request, reply, secure)}`;
  const linkCsrf = (request: FastifyRequest, reply: FastifyReply, token: string) => csrf.token(linkBinding(request, reply, token));
  const checkLinkCsrf = (request: FastifyRequest, reply: FastifyReply, token: string, candidate: unknown) => {
    if (!csrf.verify(linkBinding(request, reply, token), candidate)) throw new AppError("forbidden", formExpired);
  };
  /** Sets the sign-in ticket and sends the browser to sign in, which the ticket completes. */
  const signInAfter = (reply: FastifyReply, result: SignedInResult) => {
    setSignInTicket(reply, result.signInTicket, secure);
    return accountSignInUrl(config.issuer, { prompt: "login" });
  };

  // ---- Forgotten password ----
  app.get("/password/forgot", async (request, reply) => {
    requireEmailOn();
    return page(reply, "forgot-password", { csrf: csrf.token(`form:${formBinding(request, reply, secure)}`) });
  });

  app.post<{ Body: Static<typeof ForgotForm> }>("/password/forgot", { onRequest: sendLimit, schema: { body: ForgotForm } }, async (request, reply) => {
    requireEmailOn();
    const binding = formBinding(request, reply, secure);
    if (!csrf.verify(`form:${binding}`, request.body?.csrf)) throw new AppError("forbidden", formExpired);
    const form = { csrf: csrf.token(`form:${binding}`) };
    let email: string;
    try {
      email = normalizeEmail(request.body.email ?? "");
    } catch {
      return page(reply.code(400), "forgot-password", { ...form, error: "Enter a valid email address." });
    }
    afterAnswer(request, "password reset request", () => requestPasswordReset(deps, email, where(request)));
    return page(reply, "forgot-password", { ...form, notice: forgotPasswordAnswer });
  });

  app.get<{ Params: TokenParams }>("/password/reset/:token", { onRequest: linkLimit, schema: { params: TokenParams } }, async (request, reply) => {
    const { token } = request.params;
    await openEmailLink(deps, token, "password-reset", where(request));
    return page(reply, "reset-password", { action: `/password/reset/${token}`, csrf: linkCsrf(request, reply, token) });
  });

  app.post<{ Params: TokenParams; Body: Static<typeof NewPasswordForm> }>(
    "/password/reset/:token",
    { onRequest: linkLimit, schema: { params: TokenParams, body: NewPasswordForm } },
    async (request, reply) => {
      const { token } = request.params;
      checkLinkCsrf(request, reply, token, request.body?.csrf);
      try {
        const result = await resetPassword(deps, token, request.body.new_password ?? "", where(request));
        return reply.redirect(signInAfter(reply, result), 303);
      } catch (error) {
        if (!(error instanceof AppError && error.code === "invalid_password")) throw error;
        return page(reply.code(400), "reset-password", { action: `/password/reset/${token}`, csrf: linkCsrf(request, reply, token), error: error.message });
      }
    },
  );

  // ---- Email verification ----
  // A GET that changes state: the link itself is the proof (of reading the
  // mailbox), and a mail scanner that opens it early proves the same thing.
  app.get<{ Params: TokenParams }>("/email/verify/:token", { onRequest: linkLimit, schema: { params: TokenParams } }, async (request, reply) => {
    await verifyEmail(deps, request.params.token, where(request));
    return page(reply, "email-verified", {});
  });

  // ---- Registration ----
  app.get("/register", async (request, reply) => {
    requireOpenRegistration();
    return page(reply, "register", { csrf: csrf.token(`form:${formBinding(request, reply, secure)}`) });
  });

  app.post<{ Body: Static<typeof RegisterForm> }>("/register", { onRequest: sendLimit, schema: { body: RegisterForm } }, async (request, reply) => {
    requireOpenRegistration();
    const binding = formBinding(request, reply, secure);
    if (!csrf.verify(`form:${binding}`, request.body?.csrf)) throw new AppError("forbidden", formExpired);
    const input = { email: request.body.email ?? "", name: request.body.name, password: request.body.password ?? "" };
    const form = { csrf: csrf.token(`form:${binding}`) };
    try {
      // What can be refused without looking at accounts is refused at once.
      checkRegistration(input);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      return page(reply.code(400), "register", { ...form, email: input.email, name: input.name, error: error.message });
    }
    afterAnswer(request, "registration", () => registerAccount(deps, input, where(request)));
    return page(reply, "register", { ...form, notice: registrationAnswer, done: true });
  });

  // ---- Invitations ----
  app.get<{ Params: TokenParams }>("/invitation/:token", { onRequest: linkLimit, schema: { params: TokenParams } }, async (request, reply) => {
    const { token } = request.params;
    const { user } = await openEmailLink(deps, token, "invitation", where(request));
    return page(reply, "invitation", { email: user.email, token, csrf: linkCsrf(request, reply, token) });
  });

  app.post<{ Params: TokenParams; Body: Static<typeof NewPasswordForm> }>(
    "/invitation/:token/password",
    { onRequest: linkLimit, schema: { params: TokenParams, body: NewPasswordForm } },
    async (request, reply) => {
      const { token } = request.params;
      checkLinkCsrf(request, reply, token, request.body?.csrf);
      try {
        const result = await acceptInvitationWithPassword(deps, token, request.body.new_password ?? "", where(request));
        return reply.redirect(signInAfter(reply, result), 303);
      } catch (error) {
        if (!(error instanceof AppError && error.code === "invalid_password")) throw error;
        const { user } = await openEmailLink(deps, token, "invitation", where(request));
        return page(reply.code(400), "invitation", { email: user.email, token, csrf: linkCsrf(request, reply, token), error: error.message });
      }
    },
  );

  app.post<{ Params: TokenParams }>(
    "/invitation/:token/passkey/options",
    { onRequest: linkLimit, schema: { params: TokenParams, body: PasskeyOptionsBody } },
    async (request, reply) => {
      const { token } = request.params;
      checkLinkCsrf(request, reply, token, request.headers["x-csrf-token"]);
      const { user } = await openEmailLink(deps, token, "invitation", where(request));
      return startPasskeyRegistration(ctx.db, rp, user);
    },
  );

  app.post<{ Params: TokenParams; Body: PasskeyRegistrationBody }>(
    "/invitation/:token/passkey",
    { onRequest: linkLimit, schema: { params: TokenParams, body: PasskeyRegistrationBody } },
    async (request, reply) => {
      const { token } = request.params;
      checkLinkCsrf(request, reply, token, request.headers["x-csrf-token"]);
      const body = { ...request.body, response: request.body.response as RegistrationResponseJSON };
      const result = await acceptInvitationWithPasskey(deps, rp, token, body, where(request));
      return reply.code(201).send({ redirectTo: signInAfter(reply, result) });
    },
  );
}
