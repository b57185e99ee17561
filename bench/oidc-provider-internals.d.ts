// oidc-provider's in-memory adapter and its LRU store, imported by path by
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
