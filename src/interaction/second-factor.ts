/**
 * The second step of a sign-in (docs/two-step-verification.md): after a right
 * password (or a passkey without user verification), a code from the
 * authenticator app (RFC 6238) or a recovery code; the set-up of an
 * authenticator app when MFA=required or the client asked for two factors
 * (acr_values=urn:gatehouse:mfa) and the user has none; and the step-up of a
 * session that signed in with one factor. The right first factor waits in
 * the interaction (stored server-side) until the second succeeds: no session
 * exists before.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Type, type Static } from "@sinclair/typebox";
import type { AppContext } from "../context.ts";
import { renderPage } from "../views.ts";
import { verifySecondFactor, type SignInResult } from "../services/sign-in.ts";
import { confirmTotpSetup, startTotpSetup, totpKeyFingerprint } from "../services/mfa.ts";
import { acrOf, mfaAcr, withSecondFactor } from "../protocol.ts";
import { hasConfirmedTotp } from "../db/mfa.ts";
import { findUserById } from "../db/users.ts";
import { mfaRequiredReason } from "../oidc/provider.ts";
import { AppError } from "../errors.ts";

type Params = { uid: string };
type Provider = AppContext["host"]["provider"];
type Interaction = Awaited<ReturnType<Provider["interactionDetails"]>>;
type Details = (request: FastifyRequest, reply: FastifyReply) => Promise<{ interaction: Interaction; client: { clientId: string; clientName?: string } }>;

const Csrf = Type.String({ maxLength: 200 });
const SecondFactorBody = Type.Object(
  { csrf: Type.Optional(Csrf), code: Type.Optional(Type.String({ maxLength: 20 })), recovery_code: Type.Optional(Type.String({ maxLength: 64 })) },
  { additionalProperties: false },
);
const TotpSetupBody = Type.Object({ csrf: Type.Optional(Csrf), code: Type.Optional(Type.String({ maxLength: 20 })) }, { additionalProperties: false });
const CsrfBody = Type.Object({ csrf: Type.Optional(Csrf) }, { additionalProperties: false });

const invalidCode = "That code is not right, or it was already used.";
export const expiredForm = "The form has expired or did not come from this site. Go back and try again.";

/**
 * A sign-in whose first factor (password, or passkey without user
 * verification) was right and whose second is still due, kept in the
 * interaction (stored server-side; the browser holds only its cookie).
 */
interface PendingSignIn {
  accountId: string;
  /** RFC 8176 methods so far. */
  amr: string[];
  /** The session's original loginTs when only a second factor is added to it (step-up). */
  ts?: number;
  /** Epoch seconds of the first factor. */
  at: number;
  /** The user has no authenticator app yet and sets one up now. */
  setup?: boolean;
  /** Set once the app set up during this sign-in was confirmed by a code: only /finish remains. */
  setUpDone?: boolean;
  /** SHA-256 of the key this sign-in's set-up made: only that key is shown again. */
  setupKey?: string;
}


const pendingKey = "gatehouse_second_factor";
/** Seconds a right first factor waits for the second. */
const pendingTtl = 600;

export interface SecondFactorStep {
  /**
   * After a right first factor: whether a second one is due (the user has an
   * authenticator app; MFA=required; or the client asked with acr_values)
   * and, if so, the pending state saved and the page of the second step;
   * otherwise the login finished. Returns where to send the browser.
   */
  afterFirstFactor(request: FastifyRequest, reply: FastifyReply, interaction: Interaction, accountId: string, amr: string[]): Promise<string>;
  /** Whether afterFirstFactor will ask for a second factor, for the audit of the first (SignInContext.secondFactorDue). */
  isDue(interaction: Interaction, accountId: string, amr: string[]): Promise<boolean>;
  /** For GET /interaction/{uid} at the login prompt: renders the pending second step (or starts a step-up) and says whether it did. */
  renderPending(request: FastifyRequest, reply: FastifyReply, interaction: Interaction, clientName: string | undefined, recovery: boolean): Promise<boolean>;
}

/** Registers the second step's routes; returns what the sign-in routes call. */
export function secondFactorStep(app: FastifyInstance, ctx: AppContext, details: Details): SecondFactorStep {
  const { csrf, host } = ctx;


  function pendingOf(interaction: Interaction): PendingSignIn | undefined {
    const pending = (interaction.result as Record<string, unknown> | undefined)?.[pendingKey] as PendingSignIn | undefined;
    if (!pending || typeof pending.accountId !== "string" || Date.now() / 1000 - pending.at > pendingTtl) return undefined;
    return pending;
  }

  async function savePending(interaction: Interaction, pending: PendingSignIn) {
    interaction.result = { [pendingKey]: pending };
    await interaction.save(Math.max(1, (interaction.exp ?? 0) - Math.floor(Date.now() / 1000)));
  }

  /** Ends the login step (oidc-provider's interactionResult) with acr and amr (RFC 8176) for the ID token. */
  async function finishLogin(request: FastifyRequest, reply: FastifyReply, accountId: string, amr: string[], ts?: number): Promise<string> {
    return host.provider.interactionResult(
      request.raw,
      reply.raw,
      { login: { accountId, amr, acr: acrOf(amr), ...(ts !== undefined && { ts }) } },
      { mergeWithLastSubmission: false },
    );
  }

  // Whether the user has an authenticator app, read once per request: the
  // sign-in audits its outcome (isDue) and then acts on it (afterFirstFactor)
  // from the same answer. Keyed by the interaction object, which
  // interactionDetails makes afresh for each request.
  const totpRead = new WeakMap<Interaction, { accountId: string; hasTotp: Promise<boolean> }>();
  function hasTotpOf(interaction: Interaction, accountId: string): Promise<boolean> {
    const read = totpRead.get(interaction);
    if (read?.accountId === accountId) return read.hasTotp;
    const hasTotp = hasConfirmedTotp(ctx.db, accountId);
    totpRead.set(interaction, { accountId, hasTotp });
    return hasTotp;
  }

  /** undefined when no second factor is due; otherwise whether the user has an authenticator app to ask. */
  async function secondFactorOf(interaction: Interaction, accountId: string, amr: string[]): Promise<{ hasTotp: boolean } | undefined> {
    if (amr.includes("mfa")) return undefined;
    const hasTotp = await hasTotpOf(interaction, accountId);
    const asked = String(interaction.params.acr_values ?? "").split(" ").includes(mfaAcr);
    return hasTotp || asked || ctx.config.mfa === "required" ? { hasTotp } : undefined;
  }

  async function afterFirstFactor(request: FastifyRequest, reply: FastifyReply, interaction: Interaction, accountId: string, amr: string[]): Promise<string> {
    const due = await secondFactorOf(interaction, accountId, amr);
    if (due) {
      await savePending(interaction, { accountId, amr, at: Math.floor(Date.now() / 1000), ...(!due.hasTotp && { setup: true }) });
      return `/interaction/${interaction.uid}`;
    }
    return finishLogin(request, reply, accountId, amr);
  }

  function renderSecondFactor(reply: FastifyReply, uid: string, clientName: string | undefined, recovery: boolean, extra: Record<string, unknown> = {}) {
    return reply.type("text/html").send(renderPage("second-factor", { uid, clientName, csrf: csrf.token(uid), recovery, ...extra }));
  }

  async function renderSetup(reply: FastifyReply, interaction: Interaction, pending: PendingSignIn, extra: Record<string, unknown> = {}) {
    const uid = interaction.uid;
    const user = await findUserById(ctx.db, pending.accountId);
    if (!user) throw new AppError("invalid_request", "Sign in again.");
    // An unconfirmed key is shown again only if this sign-in made it: never
    // one started elsewhere (on /account, or by another sign-in), which its
    // owner may be about to turn on.
    let setup = pending.setupKey ? await startTotpSetup(ctx.db, ctx.ring, user, ctx.config.issuer, true) : undefined;
    if (!setup || totpKeyFingerprint(setup.secret) !== pending.setupKey) {
      setup = await startTotpSetup(ctx.db, ctx.ring, user, ctx.config.issuer, false);
      await savePending(interaction, { ...pending, setupKey: totpKeyFingerprint(setup.secret) });
    }
    return reply.type("text/html").send(
      renderPage("totp-setup", {
        csrf: csrf.token(uid),
        action: `/interaction/${uid}/totp-setup`,
        intro: "This sign-in needs two-step verification. Set up an authenticator app to continue.",
        secret: setup.secret,
        qrSvg: setup.qrSvg,
        ...extra,
      }),
    );
  }

  /** A login prompt whose only reason is the missing second factor of a live session: step-up. */
  async function stepUp(request: FastifyRequest, reply: FastifyReply, interaction: Interaction): Promise<PendingSignIn | undefined> {
    const accountId = interaction.session?.accountId;
    if (!accountId || interaction.prompt.reasons.some((reason) => reason !== mfaRequiredReason)) return undefined;
    const user = await findUserById(ctx.db, accountId);
    if (!user || user.disabled) return undefined;
    const session = await host.provider.Session.get({ req: request.raw, res: reply.raw } as never);
    if (session?.accountId !== accountId || typeof session.loginTs !== "number") return undefined;
    const amr = Array.isArray(interaction.session?.amr) ? interaction.session.amr.filter((m): m is string => typeof m === "string") : [];
    const hasTotp = await hasConfirmedTotp(ctx.db, accountId);
    const pending: PendingSignIn = { accountId, amr, ts: session.loginTs, at: Math.floor(Date.now() / 1000), ...(!hasTotp && { setup: true }) };
    await savePending(interaction, pending);
    return pending;
  }

  async function renderPending(request: FastifyRequest, reply: FastifyReply, interaction: Interaction, clientName: string | undefined, recovery: boolean): Promise<boolean> {
    const uid = interaction.uid;
    const pending = pendingOf(interaction) ?? (await stepUp(request, reply, interaction));
    if (!pending) return false;
    if (pending.setup) await renderSetup(reply, interaction, pending);
    // Set up and confirmed in this sign-in (a reload of the recovery codes page): the codes are not shown again.
    else if (pending.setUpDone) reply.type("text/html").send(renderPage("recovery-codes", { codes: [], csrf: csrf.token(uid), action: `/interaction/${uid}/finish`, intro: "Two-step verification is on." }));
    else renderSecondFactor(reply, uid, clientName, recovery);
    return true;
  }

  // The second step: a code from the authenticator app, or a recovery code.
  app.post<{ Params: Params; Body: Static<typeof SecondFactorBody> }>("/interaction/:uid/second-factor", { schema: { body: SecondFactorBody } }, async (request, reply) => {
    const { interaction, client } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.body?.csrf)) throw new AppError("forbidden", expiredForm);
    const pending = interaction.prompt.name === "login" ? pendingOf(interaction) : undefined;
    if (!pending || pending.setup || pending.setUpDone) return reply.redirect(`/interaction/${interaction.uid}`, 303);
    const user = await findUserById(ctx.db, pending.accountId);
    if (!user) throw new AppError("invalid_request", "Sign in again.");
    const recovery = request.body.recovery_code !== undefined;
    const result: SignInResult = await verifySecondFactor(ctx.signIn, {
      ring: ctx.ring,
      user,
      firstAmr: pending.amr,
      kind: recovery ? "recovery_code" : "totp",
      code: (recovery ? request.body.recovery_code : request.body.code) ?? "",
      ip: request.ip,
      userAgent: request.headers["user-agent"],
      clientId: client.clientId,
    });
    if (result.ok) return reply.redirect(await finishLogin(request, reply, user.id, result.amr, pending.ts), 303);
    if (result.reason === "rate_limited") {
      const minutes = Math.ceil(result.retryAfterSeconds / 60);
      reply.code(429).header("retry-after", String(result.retryAfterSeconds));
      return renderSecondFactor(reply, interaction.uid, client.clientName, recovery, { error: `Too many failed attempts. Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.` });
    }
    if (result.reason === "busy") {
      reply.code(503).header("retry-after", String(result.retryAfterSeconds));
      return renderSecondFactor(reply, interaction.uid, client.clientName, recovery, { error: "The server is busy. Try again in a moment." });
    }
    reply.code(401);
    return renderSecondFactor(reply, interaction.uid, client.clientName, recovery, { error: invalidCode });
  });

  // Set-up during sign-in (MFA=required, or a client asked for two factors):
  // the first code turns the app on; the recovery codes are shown once.
  app.post<{ Params: Params; Body: Static<typeof TotpSetupBody> }>("/interaction/:uid/totp-setup", { schema: { body: TotpSetupBody } }, async (request, reply) => {
    const { interaction } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.body?.csrf)) throw new AppError("forbidden", expiredForm);
    const pending = interaction.prompt.name === "login" ? pendingOf(interaction) : undefined;
    if (!pending?.setup) return reply.redirect(`/interaction/${interaction.uid}`, 303);
    const actor = { actorType: "user" as const, actorId: pending.accountId, ip: request.ip, userAgent: request.headers["user-agent"] };
    const codes = await confirmTotpSetup(ctx.db, ctx.ring, pending.accountId, request.body.code ?? "", actor, ctx.config, pending.setupKey);
    if (!codes) return renderSetup(reply.code(400), interaction, pending, { error: invalidCode });
    await savePending(interaction, { ...pending, setup: false, setUpDone: true, amr: withSecondFactor(pending.amr) });
    return reply.type("text/html").send(
      renderPage("recovery-codes", { codes, csrf: csrf.token(interaction.uid), action: `/interaction/${interaction.uid}/finish`, intro: "Two-step verification is on." }),
    );
  });

  app.post<{ Params: Params; Body: Static<typeof CsrfBody> }>("/interaction/:uid/finish", { schema: { body: CsrfBody } }, async (request, reply) => {
    const { interaction } = await details(request, reply);
    if (!csrf.verify(interaction.uid, request.body?.csrf)) throw new AppError("forbidden", expiredForm);
    const pending = interaction.prompt.name === "login" ? pendingOf(interaction) : undefined;
    // Only a sign-in whose second factor was just set up and proved.
    if (!pending?.setUpDone || !pending.amr.includes("mfa")) return reply.redirect(`/interaction/${interaction.uid}`, 303);
    return reply.redirect(await finishLogin(request, reply, pending.accountId, pending.amr, pending.ts), 303);
  });

  const isDue = async (interaction: Interaction, accountId: string, amr: string[]) => (await secondFactorOf(interaction, accountId, amr)) !== undefined;
  return { afterFirstFactor, isDue, renderPending };
}
