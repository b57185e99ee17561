/**
 * What one request to oidc-provider has read from the database, so that two
 * lookups of the same row within that request cost one statement (the
 * adapter consults it). Nothing outlives its request: a revocation made
 * between two requests is seen by the second, as before. The adapter empties
 * the scope when each of the request's writes starts and again when it ends.
 *
 * The scope belongs to the request's koa context, which oidc-provider keeps in
 * its own AsyncLocalStorage for the whole of a provider request
 * (`Provider.ctx`, lib/helpers/initialize_app.js). A second AsyncLocalStorage
 * of ours would cost every promise of every request another propagation
 * (docs/PERFORMANCE.md). Outside a provider request (our own routes calling
 * `interactionDetails`, for instance) there is no context, and so no scope:
 * every read goes to the database.
 */
import Provider from "oidc-provider";

export type RequestReads = Map<string, Promise<unknown>>;

const scopes = new WeakMap<object, RequestReads>();

/** The current provider request's reads, or undefined outside a provider request. */
export function requestReads(): RequestReads | undefined {
  const ctx = Provider.ctx;
  if (!ctx) return undefined;
  let reads = scopes.get(ctx);
  if (!reads) {
    reads = new Map();
    scopes.set(ctx, reads);
  }
  return reads;
}

/** Forgets what the current provider request has read (it has written), if it read anything. */
export function forgetRequestReads(): void {
  const ctx = Provider.ctx;
  if (ctx) scopes.get(ctx)?.clear();
}
