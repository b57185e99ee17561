/**
 * Server-rendered pages (docs/ARCHITECTURE.md). Eta with auto-escaping: `<%= %>`
 * escapes, `<%~ %>` (raw) is used only for markup we built ourselves.
 * One renderer serves our Fastify routes and oidc-provider's page hooks.
 */
import { fileURLToPath } from "node:url";
import { Eta } from "eta";

export const viewsDir = fileURLToPath(new URL("../views", import.meta.url));
export const staticDir = fileURLToPath(new URL("../static", import.meta.url));

const eta = new Eta({ views: viewsDir, autoEscape: true, cache: true });

/** Renders views/<name>.eta with `data`. */
export function renderPage(name: string, data: Record<string, unknown>): string {
  return eta.render(`./${name}`, data);
}

/** An error page: a short message and the request id, never a stack trace. */
export function renderErrorPage(title: string, message: string, requestId: string): string {
  return renderPage("error", { title, message, requestId });
}

