/**
 * Module resolution hooks (registered with node:module's `register`) so that a
 * test script anywhere on disk can `import { … } from "nixos-test-ts"` and get
 * this very runtime, without a node_modules next to it.
 */
interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;

const runtimeEntry = new URL("../index.js", import.meta.url).href;

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier === "nixos-test-ts" || specifier === "nixos-test-ts/runtime") return { url: runtimeEntry, shortCircuit: true };
  return next(specifier, context);
}
