/**
 * The two small cookies of the email flows, next to oidc-provider's own
 * (RFC 6265bis: HttpOnly, SameSite=Lax, Secure when the issuer is https):
 *
 * - the form cookie: a random value that the CSRF token of an anonymous form
 *   (/password/forgot, /register) is bound to (OWASP CSRF Prevention Cheat
 *   Sheet, "Signed double-submit cookie"), since such a form has no session
 *   or interaction to bind to;
 * - the sign-in ticket: set after a reset or an accepted invitation, read once
 *   by the sign-in page (interaction/routes.ts), which then completes the
 *   sign-in (services/account-lifecycle.ts, takeSignInTicket).
 */
import { randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";

/** The value of cookie `name` in the request, if any (the last one wins, as in most parsers). */
export function readCookie(request: FastifyRequest, name: string): string | undefined {
  let found: string | undefined;
  for (const part of (request.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) found = part.slice(eq + 1).trim();
  }
  return found && found.length <= 200 ? found : undefined;
}

function serialize(name: string, value: string, options: { path: string; maxAge: number; secure: boolean }): string {
  return `${name}=${value}; Path=${options.path}; Max-Age=${options.maxAge}; HttpOnly; SameSite=Lax${options.secure ? "; Secure" : ""}`;
}

/** Appends a Set-Cookie line to the raw response, so that it survives oidc-provider's and Fastify's own headers. */
function appendSetCookie(reply: FastifyReply, line: string): void {
  reply.raw.appendHeader("set-cookie", line);
}

export function formCookieName(secure: boolean): string {
  // __Host-: only set by this host over https, with Path=/ (RFC 6265bis section 4.1.3.2).
  return secure ? "__Host-gatehouse.form" : "gatehouse.form";
}

/** The form cookie's value, set now (for a year) when the browser has none. */
export function formBinding(request: FastifyRequest, reply: FastifyReply, secure: boolean): string {
  const name = formCookieName(secure);
  const existing = readCookie(request, name);
  if (existing && /^[A-Za-z0-9_-]{22}$/.test(existing)) return existing;
  const value = randomBytes(16).toString("base64url");
  appendSetCookie(reply, serialize(name, value, { path: "/", maxAge: 365 * 86400, secure }));
  return value;
}

export const signInTicketCookie = "gatehouse.signin";
/** The ticket cookie is sent to the sign-in pages only. */
const ticketPath = "/interaction";

export function setSignInTicket(reply: FastifyReply, ticket: string, secure: boolean): void {
  appendSetCookie(reply, serialize(signInTicketCookie, ticket, { path: ticketPath, maxAge: 120, secure }));
}

export function clearSignInTicket(reply: FastifyReply, secure: boolean): void {
  appendSetCookie(reply, serialize(signInTicketCookie, "", { path: ticketPath, maxAge: 0, secure }));
}
