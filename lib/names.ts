import { GENERATED_IMPORTS, SCRIPT_SYMBOLS_LIST } from "./script-symbols.js";

/**
 * Machine names as nixpkgs derives and sanitises them, shared by the runtime
 * (which binds the symbols) and the generator (which types them).
 */

/** `run-<name>-vm` → `<name>`; anything else → `machine` (as the Python driver). */
export function machineNameFromStartScript(startScript: string): string {
  const base = startScript.trim().split(/\s+/)[0]?.split("/").pop() ?? "";
  return /^run-(.+)-(?:vm|nspawn)$/.exec(base)?.[1] ?? "machine";
}

/** nixpkgs' `pythonize_name`: `machine-a` → `machine_a`, `1st` → `_st`. */
export function sanitiseName(name: string): string {
  return name.replace(/^[^A-Za-z_]|[^A-Za-z0-9_]/g, "_");
}

/** Identifiers a `const` cannot be called, and globals every script needs. */
const UNUSABLE_NAMES = new Set([
  ...(
    "break case catch class const continue debugger default delete do else enum export extends false finally for function if " +
    "import in instanceof new null return super switch this throw true try typeof var void while with yield let static implements " +
    "interface package private protected public await"
  ).split(" "),
  ...(
    "undefined NaN Infinity globalThis eval arguments console process Object Array Promise Symbol Error JSON Math Date " +
    "String Number Boolean RegExp Map Set"
  ).split(" "),
  ...SCRIPT_SYMBOLS_LIST.map((s) => s.name),
  ...GENERATED_IMPORTS,
]);

/**
 * The identifier of a machine in a test script: nixpkgs' sanitised name, and
 * when that is a reserved word, a global the script needs or one of the
 * test's own names (`log`, `vlan1`, …), the same with `_` appended until it
 * is free: node `default` is `default_`, node `log` is `log_`. The machine's
 * name (logs, `machines`, getMachine) stays the node's.
 */
export function scriptBinding(name: string): string {
  let binding = sanitiseName(name);
  while (UNUSABLE_NAMES.has(binding) || /^vlan\d+$/.test(binding)) binding += "_";
  return binding;
}
