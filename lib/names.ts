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
