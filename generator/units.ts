/**
 * Unit names as nixpkgs tests write them, and what to say when one is
 * wrong. systemd reads a name without a suffix as a service (`nginx` is
 * `nginx.service`) and refuses a template without an instance
 * (`backup@.service`); the generated unit types accept the first, the lint
 * rejects the second, and a unit no node declares is explained with the
 * nearest declared units and the node that has it.
 */
import type { ManifestNode } from "../lib/manifest.js";

const SUFFIX = /\.(service|socket|target|device|mount|automount|swap|path|timer|slice|scope)$/;

/** `backup@.service`, `backup@`: a template unit named without its instance. */
export function isTemplateWithoutInstance(unit: string): boolean {
  return /@(\.[a-z]+)?$/.test(unit);
}

/** The unit systemd means by `name`: `.service` is added when there is no unit suffix. */
export function fullUnitName(name: string): string {
  return SUFFIX.test(name) ? name : `${name}.service`;
}

/** Whether a node declares `unit` (an instance of a declared template counts). */
export function declaresUnit(units: readonly string[], unit: string): boolean {
  const full = fullUnitName(unit);
  if (units.includes(full)) return true;
  const at = full.indexOf("@");
  if (at === -1 || isTemplateWithoutInstance(full)) return false;
  const dot = full.lastIndexOf(".");
  return units.includes(`${full.slice(0, at + 1)}${full.slice(dot)}`);
}

/**
 * Service names without their suffix, as TypeScript types, which the unit
 * types accept too: `"nginx"` for nginx.service, `` `getty@${string}` `` for getty@.service.
 */
export function bareServiceTypes(units: readonly string[]): string[] {
  return units
    .filter((u) => u.endsWith(".service"))
    .map((u) => u.slice(0, -".service".length))
    .map((u) => (u.endsWith("@") ? `\`${u.replace(/[\\`$]/g, (c) => `\\${c}`)}\${string}\`` : JSON.stringify(u)));
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** Up to three declared units closest to `unit` (by name, suffix included), nearest first. */
export function nearestUnits(units: readonly string[], unit: string): string[] {
  const full = fullUnitName(unit);
  const limit = Math.max(2, Math.floor(full.length / 3));
  return units
    .map((u) => ({ u, d: Math.min(distance(full, u), distance(unit, u)) }))
    .filter(({ d }) => d <= limit)
    .sort((a, b) => a.d - b.d || (a.u < b.u ? -1 : 1))
    .slice(0, 3)
    .map(({ u }) => u);
}

/**
 * Why `unit` is wrong for `node`, or undefined when it is fine: a template
 * without an instance, or a unit the node does not declare (with the nearest
 * ones it does, and the nodes that declare it).
 */
export function unitProblem(node: ManifestNode, all: readonly ManifestNode[], unit: string, method: string): string | undefined {
  if (isTemplateWithoutInstance(unit)) {
    const full = fullUnitName(unit.endsWith("@") ? `${unit}.service` : unit);
    const instance = full.replace("@.", "@<instance>.");
    return `\`${unit}\` is a template unit without an instance: systemd cannot ${method === "waitForUnit" ? "wait for" : "act on"} it. Name an instance: \`${instance}\`.`;
  }
  if (declaresUnit(node.units, unit)) return undefined;
  const full = fullUnitName(unit);
  const near = nearestUnits(node.units, unit);
  const others = all.filter((n) => n !== node && declaresUnit(n.units, unit)).map((n) => n.binding);
  return [
    `node ${node.name} declares no unit \`${full}\`${full === unit ? "" : ` (what systemd reads \`${unit}\` as)`}.`,
    near.length > 0 ? ` Nearest units of ${node.name}: ${near.map((u) => `\`${u}\``).join(", ")}.` : "",
    others.length > 0
      ? ` ${others.length === 1 ? "Node" : "Nodes"} ${others.join(", ")} ${others.length === 1 ? "has" : "have"} it: \`${others[0]}.${method}(…)\`?`
      : "",
    ' A unit created at run time goes through `runtimeUnit("…")`.',
  ].join("");
}
