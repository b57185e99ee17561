/**
 * Holds the running oidc-provider instance. oidc-provider takes its keys at
 * construction, so a new key set means a new provider: swap() replaces it for
 * the next request while requests in flight finish on the old one.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type Provider from "oidc-provider";

type Callback = (req: IncomingMessage, res: ServerResponse) => void;

export class ProviderHost {
  #provider: Provider;
  #callback: Callback;

  constructor(provider: Provider) {
    this.#provider = provider;
    this.#callback = provider.callback() as Callback;
  }

  get provider(): Provider {
    return this.#provider;
  }

  /** The request handler of the current provider. */
  get callback(): Callback {
    return this.#callback;
  }

  swap(provider: Provider): void {
    this.#callback = provider.callback() as Callback;
    this.#provider = provider;
  }
}
