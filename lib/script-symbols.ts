/**
 * The one list of what a test script has in scope besides its machines, as
 * nixpkgs derives its `test_symbols()` from the driver. Everything else
 * follows it: the runtime binds these names (runtime/driver/driver.ts, typed so
 * that a listed name without a binding does not compile), the generator
 * declares them (generator/generate.ts), the REPL offers them, node names
 * that would shadow them get a safe identifier (lib/manifest.ts), and the
 * README's porting table is checked against it (test/unit/script-symbols.test.ts).
 */

export interface ScriptSymbol {
  /** The name in a TypeScript script. */
  readonly name: string;
  /** nixpkgs' Python name, for the porting table. */
  readonly python: string;
  /**
   * `api`: a function exported by "nixos-test-ts" (runtime/driver/test-api.ts) and
   * typed from it; `value`: an object the driver binds (typed by the
   * generator); `repl`: only in the interactive driver.
   */
  readonly kind: "api" | "value" | "repl";
}

export const SCRIPT_SYMBOLS_LIST = [
  { name: "driver", python: "driver", kind: "value" },
  { name: "machines", python: "machines", kind: "value" },
  { name: "vlans", python: "vlans", kind: "value" },
  { name: "values", python: "(none: Nix interpolation into the script's text)", kind: "value" },
  { name: "runtimeUnit", python: "(none: any string is a unit)", kind: "value" },
  { name: "startAll", python: "start_all", kind: "api" },
  { name: "joinAll", python: "join_all", kind: "api" },
  { name: "subtest", python: "subtest", kind: "api" },
  { name: "retry", python: "retry", kind: "api" },
  { name: "pollingCondition", python: "polling_condition", kind: "api" },
  { name: "log", python: "log", kind: "api" },
  { name: "t", python: "t", kind: "api" },
  { name: "serialStdoutOn", python: "serial_stdout_on", kind: "api" },
  { name: "serialStdoutOff", python: "serial_stdout_off", kind: "api" },
  { name: "createMachine", python: "create_machine", kind: "api" },
  { name: "runTests", python: "run_tests", kind: "repl" },
  { name: "testScript", python: "test_script", kind: "repl" },
] as const satisfies readonly ScriptSymbol[];

/** The functions "nixos-test-ts" exports for scripts, which are also their globals. */
export type ScriptApiName = Extract<(typeof SCRIPT_SYMBOLS_LIST)[number], { kind: "api" }>["name"];

export const SCRIPT_API_NAMES: readonly ScriptApiName[] = SCRIPT_SYMBOLS_LIST.filter(
  (s): s is Extract<(typeof SCRIPT_SYMBOLS_LIST)[number], { kind: "api" }> => s.kind === "api",
).map((s) => s.name);

/** What test.generated.ts imports from the runtime: a node must not take these names either. */
export const GENERATED_IMPORTS = ["currentDriver", "getMachine"] as const;
