import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

/** The installed package's root (…/dist), whose frames are ours, not the user's. */
const packageRoot = dirname(dirname(fileURLToPath(import.meta.url)));

/**
 * Captures where the test script called into the driver. Stacks are captured
 * eagerly (cheap) and formatted only when an error needs the location.
 */
export function captureCallSite(): () => string | undefined {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, captureCallSite);
  return () => userFrame(holder.stack);
}

/** The first stack frame that is not the driver's, not Node's: `file:line:column`. */
export function userFrame(stack: string | undefined): string | undefined {
  for (const line of (stack ?? "").split("\n").slice(1)) {
    const m = /(?:^at |\()((?:file:\/\/)?\/[^\s()]+):(\d+):(\d+)\)?$/.exec(line.trim());
    if (m === null) continue;
    const file = m[1]?.startsWith("file://") ? fileURLToPath(m[1]) : (m[1] as string);
    if (file.startsWith(packageRoot) || file.includes("/node_modules/")) continue;
    return `${file}:${m[2]}:${m[3]}`;
  }
  return undefined;
}

const LOCATION = Symbol.for("nixos-test-ts.scriptLocation");

/** Remembers on the error where in the test script it was caused (first one wins). */
export function attachLocation(error: unknown, site: () => string | undefined): void {
  if (typeof error !== "object" || error === null || LOCATION in error) return;
  const location = site();
  if (location !== undefined) Object.defineProperty(error, LOCATION, { value: location, enumerable: false });
}

export function scriptLocation(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const attached = (error as Record<symbol, unknown>)[LOCATION];
  if (typeof attached === "string") return attached;
  return userFrame((error as { stack?: string }).stack);
}
