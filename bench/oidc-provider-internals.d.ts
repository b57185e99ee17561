// Internal modules of oidc-provider imported by path. Its in-memory adapter and LRU store, by
// bench/baseline.ts (the package has no "exports" map and no types for them).
declare module "oidc-provider/lib/adapters/memory_adapter.js" {
  export default class MemoryAdapter {
    constructor(model: string, store?: unknown, clockTolerance?: number);
  }
}
declare module "oidc-provider/lib/helpers/lru.js" {
  export default class LRU {
    constructor(options: { maxSize: number });
  }
}
// The AsyncLocalStorage oidc-provider runs each request in (Provider.ctx reads
// it), imported by path by test/integration/request-scope.test.ts to run the
// adapter as inside a provider request.
declare module "oidc-provider/lib/helpers/als.js" {
  import type { AsyncLocalStorage } from "node:async_hooks";
  const als: AsyncLocalStorage<object>;
  export default als;
}
