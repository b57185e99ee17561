/**
 * What one request to oidc-provider has read from the database, so that two
 * lookups of the same row within that request cost one statement
 * (plugins/oidc.ts runs each provider request in its own scope; the adapter
 * consults it). Nothing outlives its request: a revocation made between two
 * requests is seen by the second, as before. The adapter empties the scope
 * whenever the request writes.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export type RequestReads = Map<string, Promise<unknown>>;

const storage = new AsyncLocalStorage<RequestReads>();

export function runInRequestScope<T>(fn: () => T): T {
  return storage.run(new Map(), fn);
}

/** The current request's reads, or undefined outside a provider request. */
export function requestReads(): RequestReads | undefined {
  return storage.getStore();
}
