// Types of scripts/build-state.mjs, for the TypeScript tests and benchmark that import it.
export declare const stampName: string;
export declare function staleBuildReason(root: string | URL): string | undefined;
