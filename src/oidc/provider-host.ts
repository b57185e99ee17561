/**
 * Holds the running oidc-provider instance and the key set it was built
 * with. oidc-provider takes its keys at construction, so a new key set means
 * a new provider: swap() replaces it for the next request, while requests in
 * flight finish on the old one (each request is handed the callback that was
 * current when it arrived). Nothing else lives in a provider instance:
 * sessions, interactions, grants and tokens are rows in the database, so
 * they carry over to the new provider.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type Provider from "oidc-provider";
import type { KeySet } from "./keys.ts";

type Callback = (req: IncomingMessage, res: ServerResponse) => void;

/** What the host knows of its key set (no private parts). */
export type KeySetSummary = Pick<KeySet, "version" | "currentAlgs" | "states">;

export class ProviderHost {
  #provider: Provider;
  #callback: Callback;
  #keySet: KeySetSummary;

  constructor(provider: Provider, keySet: KeySetSummary) {
    this.#provider = provider;
    this.#callback = provider.callback() as Callback;
    this.#keySet = keySet;
  }

  get provider(): Provider {
    return this.#provider;
  }

  /** The request handler of the current provider. */
  get callback(): Callback {
    return this.#callback;
  }

  /** The key set the current provider was built with. */
  get keySet(): KeySetSummary {
    return this.#keySet;
  }

  swap(provider: Provider, keySet: KeySetSummary): void {
    this.#callback = provider.callback() as Callback;
    this.#provider = provider;
    this.#keySet = keySet;
  }
}
