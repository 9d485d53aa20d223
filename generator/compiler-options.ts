/**
 * The compiler options of a test's program, as tsconfig.json spells them: the
 * check and every tsconfig.json we write use these. (Its own module so that
 * writing a tsconfig does not load the compiler.)
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The generated module's file name; the user's script imports `./test.generated.js`. */
export const GENERATED_FILE = "test.generated.ts";
/** The specifier of the static types (generator/typing.ts). */
export const TYPING_SPECIFIER = "nixos-test-ts/typing";
/** The runtime: resolved at run time by the runtime's loader hook, at check time by `paths`. */
export const RUNTIME_SPECIFIER = "nixos-test-ts";

/** This package's dist/ directory (this file is dist/generator/compiler-options.js). */
export const DIST = dirname(dirname(fileURLToPath(import.meta.url)));

export function tsconfigOptions(options: { nodeTypes?: boolean } = {}): Record<string, unknown> {
  const nodeTypesRoot = options.nodeTypes ? findNodeTypes() : undefined;
  return {
    target: "ES2022",
    module: "ESNext",
    moduleResolution: "Bundler",
    // A script without imports is a module too: top-level await works everywhere.
    moduleDetection: "force",
    // No DOM, no @types/node: parsing them would triple the check's time.
    lib: ["ES2023", "ESNext.Disposable"],
    types: options.nodeTypes ? ["node"] : [],
    ...(nodeTypesRoot === undefined ? {} : { typeRoots: [nodeTypesRoot] }),
    strict: true,
    skipLibCheck: true,
    esModuleInterop: true,
    forceConsistentCasingInFileNames: true,
    paths: {
      [RUNTIME_SPECIFIER]: [join(DIST, "runtime", "index.d.ts")],
      [TYPING_SPECIFIER]: [join(DIST, "generator", "typing.d.ts")],
    },
  };
}

/** The directory holding @types/node, if this package can see it. */
function findNodeTypes(): string | undefined {
  try {
    return dirname(dirname(createRequire(import.meta.url).resolve("@types/node/package.json")));
  } catch {
    return undefined;
  }
}
