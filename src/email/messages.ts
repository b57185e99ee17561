/**
 * The email templates. Each message is written once, as a small structure
 * (subject, paragraphs, an optional button with its link), and rendered two
 * ways from it: plain text and HTML (a multipart/alternative pair, RFC 2046
 * section 5.1.4), so the two parts cannot say different things. Every value
 * put into the HTML is escaped; links must be absolute URLs under the
 * issuer, so a message can never point anywhere else, whatever a request's
 * Host header said (docs/email.md, "Security").
 */

export type EmailMessage =
  | { kind: "verify-email"; link: string }
  | { kind: "password-reset"; link: string }
  | { kind: "invitation"; link: string }
  | { kind: "password-changed" }
  | { kind: "passkey-added"; passkeyName: string }
  | { kind: "passkey-removed"; passkeyName: string }
  | { kind: "mfa-enabled" }
  | { kind: "mfa-disabled" }
  | { kind: "recovery-code-used"; left: number }
  | { kind: "registration-attempt"; link: string /* a sign-in or reset link for the owner */ };

export type EmailKind = EmailMessage["kind"];

export interface RenderContext {
  /** The display name of this Gatehouse (config.issuerName). */
  issuerName: string;
  /** config.issuer: every link must be under it. */
  issuer: string;
  recipientName?: string | null;
}

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

/** One message, before rendering: the single source of both parts. */
interface Template {
  subject: string;
  paragraphs: string[];
  action?: { label: string; url: string };
  /** Paragraphs after the button. */
  after?: string[];
}

const notYou = "If this was not you, reset your password and review your account at once.";

function templateOf(message: EmailMessage, name: string, issuer: string): Template {
  const account = { label: "Review your account", url: `${issuer}/account` };
  switch (message.kind) {
    case "verify-email":
      return {
        subject: `Verify your email address for ${name}`,
        paragraphs: [`Please confirm that this is your email address for your ${name} account.`],
        action: { label: "Verify email address", url: message.link },
        after: ["This link is valid for 1 hour and can be used once. If you did not create an account, ignore this email."],
      };
    case "password-reset":
      return {
        subject: `Reset your ${name} password`,
        paragraphs: [`Someone (hopefully you) asked to reset the password of your ${name} account.`],
        action: { label: "Set a new password", url: message.link },
        after: ["This link is valid for 1 hour and can be used once. If you did not ask for it, ignore this email: your password stays as it is."],
      };
    case "invitation":
      return {
        subject: `You are invited to ${name}`,
        paragraphs: [`You have been invited to create your ${name} account.`],
        action: { label: "Accept the invitation", url: message.link },
        after: ["This link is valid for 7 days and can be used once. If you did not expect it, ignore this email."],
      };
    case "password-changed":
      return {
        subject: `Your ${name} password was changed`,
        paragraphs: [`The password of your ${name} account was just changed, and your other sessions were signed out.`, notYou],
        action: account,
      };
    case "passkey-added":
      return {
        subject: `A passkey was added to your ${name} account`,
        paragraphs: [`A passkey named "${message.passkeyName}" was added to your ${name} account. It can now be used to sign in.`, notYou],
        action: account,
      };
    case "passkey-removed":
      return {
        subject: `A passkey was removed from your ${name} account`,
        paragraphs: [`The passkey named "${message.passkeyName}" was removed from your ${name} account. It can no longer be used to sign in.`, notYou],
        action: account,
      };
    case "mfa-enabled":
      return {
        subject: `Two-step verification was turned on for your ${name} account`,
        paragraphs: [`Two-step verification was turned on for your ${name} account: signing in with a password now also asks for a code from your authenticator app.`, notYou],
        action: account,
      };
    case "mfa-disabled":
      return {
        subject: `Two-step verification was turned off for your ${name} account`,
        paragraphs: [`Two-step verification was turned off for your ${name} account: signing in with a password no longer asks for a code.`, notYou],
        action: account,
      };
    case "recovery-code-used":
      return {
        subject: `A recovery code was used to sign in to your ${name} account`,
        paragraphs: [
          `One of your recovery codes was just used to sign in to your ${name} account instead of a code from your authenticator app. ` +
            `${message.left === 1 ? "1 unused code is" : `${message.left} unused codes are`} left; you can generate new ones on your account page.`,
          notYou,
        ],
        action: account,
      };
    case "registration-attempt":
      return {
        subject: `Someone tried to register with your email at ${name}`,
        paragraphs: [
          `Someone tried to create a ${name} account with this email address, which already has an account. No new account was created.`,
          "If it was you, you can sign in, or set a new password if you forgot it:",
        ],
        action: { label: "Sign in or reset your password", url: message.link },
        after: ["If it was not you, you can ignore this email: your account is unchanged."],
      };
  }
}

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** Control characters (a newline in a passkey's name, say) become spaces: they could fake lines in the text part. */
function oneLine(value: string): string {
  return value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, " ");
}

/**
 * Checks that `link` is an absolute http(s) URL under `issuer` (same origin,
 * and under the issuer's path when it has one), without credentials, and
 * returns it normalized. Throws otherwise: a message never links elsewhere.
 */
export function checkLink(link: string, issuer: string): string {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw new Error("email link is not an absolute URL");
  }
  const base = new URL(issuer.endsWith("/") ? issuer : `${issuer}/`);
  if (url.origin !== base.origin || url.username || url.password || !url.href.startsWith(base.href)) {
    throw new Error("email link is not on the issuer's origin");
  }
  return url.href;
}

/**
 * Renders a message for a recipient: subject, plain text and HTML from one
 * template. Throws when a link is not under `ctx.issuer`.
 */
export function renderEmail(message: EmailMessage, ctx: RenderContext): RenderedEmail {
  const name = oneLine(ctx.issuerName);
  const issuer = ctx.issuer.replace(/\/$/, "");
  const template = templateOf(message, name, issuer);
  const action = template.action && { label: template.action.label, url: checkLink(template.action.url, ctx.issuer) };
  const recipient = ctx.recipientName ? oneLine(ctx.recipientName).trim() : "";
  const greeting = recipient ? `Hello ${recipient},` : "Hello,";
  const paragraphs = template.paragraphs.map(oneLine);
  const after = (template.after ?? []).map(oneLine);
  const signature = `${name}\n${issuer}`;

  const text = [greeting, ...paragraphs, ...(action ? [`${action.label}:\n${action.url}`] : []), ...after, `-- \n${signature}`].join("\n\n") + "\n";

  const p = (s: string) => `<p style="margin:0 0 16px">${escapeHtml(s)}</p>`;
  const button = action
    ? `<p style="margin:24px 0"><a href="${escapeHtml(action.url)}" style="display:inline-block;padding:10px 18px;background:#1f4fd1;color:#ffffff;text-decoration:none;border-radius:4px">${escapeHtml(action.label)}</a></p>` +
      `<p style="margin:0 0 16px;font-size:13px;color:#555">Or open this link: <a href="${escapeHtml(action.url)}">${escapeHtml(action.url)}</a></p>`
    : "";
  const html = [
    "<!DOCTYPE html>",
    `<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(oneLine(template.subject))}</title></head>`,
    '<body style="margin:0;padding:24px;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:15px;line-height:1.5;color:#222">',
    '<div style="max-width:560px">',
    p(greeting),
    ...paragraphs.map(p),
    button,
    ...after.map(p),
    `<p style="margin:32px 0 0;font-size:13px;color:#555">${escapeHtml(name)}<br><a href="${escapeHtml(issuer)}">${escapeHtml(issuer)}</a></p>`,
    "</div></body></html>",
  ].join("\n");

  return { subject: oneLine(template.subject), text, html };
}

/** The links a rendered text part carries (for files mode's log): URLs under the issuer. */
export function linksIn(text: string, issuer: string): string[] {
  const found = text.match(/https?:\/\/[^\s<>"]+/g) ?? [];
  return [...new Set(found)].filter((url) => {
    try {
      return checkLink(url, issuer) === url && url.replace(/\/$/, "") !== issuer.replace(/\/$/, "");
    } catch {
      return false;
    }
  });
}
