/**
 * A client's new signing key works at once. oidc-provider caches a client's
 * jwks_uri for at least 60 seconds (longer with the response's cache headers)
 * and refetches it on a failed verification only once that time is over, so
 * a private_key_jwt client that rotates its key is refused for up to a
 * minute. OpenID Connect Core 1.0 section 10.1.1 expects the verifier to
 * refetch the JWKS when it meets a kid it does not know. Here a failed
 * verification refetches the client's jwks_uri at once, at most once per
 * `minIntervalSeconds` per client, so bad assertions cannot make Gatehouse
 * fetch more often than that.
 */
import type Provider from "oidc-provider";

interface KeyStoreLike {
  readonly jwksUri?: string;
  fresh(): boolean;
  refresh(): Promise<void>;
}

const lastFetch = Symbol("gatehouse.lastJwksFetch");
type Stamped = KeyStoreLike & { [lastFetch]?: number };

/** Installs the rule on one provider instance (its client key store class is its own). */
export function refetchClientKeysOnFailure(provider: Provider, minIntervalSeconds = 5): void {
  // The key store class is internal: reach it through a throwaway client.
  const ClientClass = provider.Client as unknown as new (metadata: Record<string, unknown>) => object;
  const probe = new ClientClass({ client_id: "gatehouse-keystore-probe", token_endpoint_auth_method: "none", redirect_uris: ["https://probe.invalid/cb"] });
  const proto = Object.getPrototypeOf((probe as unknown as { asymmetricKeyStore: KeyStoreLike }).asymmetricKeyStore) as KeyStoreLike;
  const { fresh, refresh } = proto;
  // fresh() is consulted when a verification failed, and by refresh() itself:
  // once the interval since the last fetch is over, a jwks_uri counts as stale.
  proto.fresh = function (this: Stamped) {
    if (!fresh.call(this)) return false;
    return !this.jwksUri || Date.now() - (this[lastFetch] ?? 0) < minIntervalSeconds * 1000;
  };
  proto.refresh = async function (this: Stamped) {
    const fetches = !this.fresh();
    try {
      await refresh.call(this);
    } finally {
      if (fetches && this.jwksUri) this[lastFetch] = Date.now();
    }
  };
}
