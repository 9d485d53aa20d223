import { ConfigError } from "./errors.js";
import { scriptBinding } from "./names.js";
import { GENERATED_IMPORTS, SCRIPT_SYMBOLS_LIST } from "./script-symbols.js";
import { readJsonFile, Validator } from "./validate.js";

/**
 * The test manifest: what the Nix layer knows about a test's evaluated
 * machine configurations, written as `manifest.json`. The generator turns it
 * into typed bindings; the runtime never reads it.
 *
 * ```json
 * { "name": "two-nodes", "vlans": [1],
 *   "nodes": { "server": { "name": "server", "hostname": "server", "vlans": [1],
 *     "addresses": { "1": "192.168.1.2" }, "units": ["nginx.service", "getty@.service"],
 *     "ports": { "tcp": [22, 80], "udp": [] } } } }
 * ```
 */
export interface ManifestJson {
  name: string;
  /** Seconds; nixpkgs' `globalTimeout`. */
  globalTimeout?: number;
  /** An undeclared port passed to a port method is an error, not a warning. */
  strictPorts?: boolean;
  vlans: number[];
  nodes: Record<string, ManifestNodeJson>;
  /** Values computed by Nix for the script (`testScript = { nodes, pkgs, ... }: { file; values; }`): the `values` export. */
  values?: Record<string, JsonValue>;
}

/** A JSON value, as `builtins.toJSON` writes one. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface ManifestNodeJson {
  name?: string;
  /** `nodes.<name>` are VMs (the default), `containers.<name>` systemd-nspawn containers; one namespace for both. */
  kind?: "vm" | "container";
  hostname?: string;
  vlans: number[];
  /** `{ "<vlan>": "192.168.<vlan>.<i>" }` or `[{ "vlan": 1, "address": "…" }]`. */
  addresses?: Record<string, string> | { vlan: number; address: string }[];
  /** systemd units, templates as `foo@.service`. */
  units: string[];
  ports: { tcp: number[]; udp: number[] };
}

/** The validated manifest: sorted, deduplicated, with the script's binding names. */
export interface Manifest {
  name: string;
  globalTimeout: number | undefined;
  strictPorts: boolean;
  /** Vlans some node is on, ascending (a vlan without nodes gets no binding). */
  vlans: number[];
  /** Sorted by name, in code-unit order (as Nix sorts attribute names). */
  nodes: ManifestNode[];
  /** Values from Nix for the script; `{}` when there are none. */
  values: Record<string, JsonValue>;
}

export interface ManifestNode {
  /** The node's attribute name in the test (`nodes.<name>`), the machine's name in the driver. */
  name: string;
  /** The identifier the test script uses (`scriptBinding(name)`: nixpkgs' sanitised name, `default_` for a reserved word). */
  binding: string;
  /** A QEMU VM or a systemd-nspawn container (whose machine lacks the screen, keys, monitor and QMP). */
  kind: "vm" | "container";
  hostname: string;
  vlans: number[];
  addresses: { vlan: number; address: string }[];
  /** Unit names, sorted; templates (`foo@.service`) included. */
  units: string[];
  ports: { tcp: number[]; udp: number[] };
}

/** The names a test script has in scope besides the machines (lib/script-symbols.ts), and what the generated module imports. */
export const SCRIPT_SYMBOLS: readonly string[] = [...SCRIPT_SYMBOLS_LIST.map((s) => s.name), ...GENERATED_IMPORTS];

const UNIT_SUFFIXES = ["service", "socket", "target", "device", "mount", "automount", "swap", "path", "timer", "slice", "scope"];
const UNIT_NAME = new RegExp(`^[^\\s/]+\\.(?:${UNIT_SUFFIXES.join("|")})$`);
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

const TOP_LEVEL_KEYS = ["name", "globalTimeout", "strictPorts", "vlans", "nodes", "values"] as const;
const NODE_KEYS = ["name", "kind", "hostname", "vlans", "addresses", "units", "ports"] as const;

/** Validates parsed JSON; `source` names the file in error messages. */
export function parseManifest(json: unknown, source: string): Manifest {
  const v = new Validator(source);
  const root = v.object("(top level)", json);
  v.noUnknownKeys("", root, TOP_LEVEL_KEYS);
  const name = v.string("name", root.name);
  const globalTimeout = root.globalTimeout === undefined ? undefined : v.number("globalTimeout", root.globalTimeout, { min: 0 });
  if (globalTimeout === 0) v.fail("globalTimeout", "a number > 0", 0);
  const strictPorts = root.strictPorts === undefined ? false : v.boolean("strictPorts", root.strictPorts);
  const declaredVlans = new Set(v.array("vlans", root.vlans, (f, x) => vlanNumber(v, f, x)));

  const nodesJson = v.object("nodes", root.nodes);
  const nodes = Object.entries(nodesJson).map(([key, value]) => parseNode(v, source, key, value, declaredVlans));
  nodes.sort((a, b) => compare(a.name, b.name));

  const bindings = new Map<string, string>();
  for (const node of nodes) {
    const other = bindings.get(node.binding);
    if (other !== undefined) {
      throw new ConfigError(
        `${source}: nodes ${JSON.stringify(other)} and ${JSON.stringify(node.name)} both become the identifier ${node.binding} in the test script; rename one`,
        `nodes.${node.name}`,
      );
    }
    bindings.set(node.binding, node.name);
  }
  const vlans = uniqueSorted(nodes.flatMap((n) => n.vlans));
  const values = root.values === undefined ? {} : (jsonValue(v, "values", v.object("values", root.values)) as Record<string, JsonValue>);
  return { name, globalTimeout, strictPorts, vlans, nodes, values };
}

/** What JSON.parse can give, checked anyway: the manifest may come from elsewhere than Nix. */
function jsonValue(v: Validator, field: string, value: unknown): JsonValue {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return v.number(field, value);
  if (Array.isArray(value)) return value.map((x, i) => jsonValue(v, `${field}[${i}]`, x));
  const o = v.object(field, value);
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, jsonValue(v, `${field}.${k}`, x)]));
}

function parseNode(v: Validator, source: string, key: string, value: unknown, declaredVlans: Set<number>): ManifestNode {
  const field = `nodes.${key}`;
  const node = v.object(field, value);
  v.noUnknownKeys(field, node, NODE_KEYS);
  const name = node.name === undefined ? key : v.string(`${field}.name`, node.name);
  if (name !== key) v.fail(`${field}.name`, `the node's attribute name ${JSON.stringify(key)}`, name);
  const kind = node.kind === undefined ? "vm" : v.string(`${field}.kind`, node.kind);
  if (kind !== "vm" && kind !== "container") v.fail(`${field}.kind`, `"vm" or "container"`, kind);
  // A reserved word or one of the script's own names gets a safe identifier (`default_`), as lib/names.ts says.
  const binding = scriptBinding(name);
  const hostname = node.hostname === undefined ? name : v.string(`${field}.hostname`, node.hostname);

  const vlans = v.array(`${field}.vlans`, node.vlans, (f, x) => {
    const nr = vlanNumber(v, f, x);
    if (!declaredVlans.has(nr)) v.fail(f, `one of the test's vlans (${[...declaredVlans].join(", ") || "none"})`, nr);
    return nr;
  });
  const addresses = parseAddresses(v, `${field}.addresses`, node.addresses ?? [], vlans);

  const units = v.array(`${field}.units`, node.units, (f, x) => {
    const unit = v.string(f, x);
    if (!UNIT_NAME.test(unit)) v.fail(f, `a systemd unit name ending in .${UNIT_SUFFIXES.join(", .")}`, unit);
    return unit;
  });

  const portsJson = v.object(`${field}.ports`, node.ports);
  v.noUnknownKeys(`${field}.ports`, portsJson, ["tcp", "udp"]);
  const ports = { tcp: portList(v, `${field}.ports.tcp`, portsJson.tcp), udp: portList(v, `${field}.ports.udp`, portsJson.udp) };

  return { name, binding, kind: kind as "vm" | "container", hostname, vlans: uniqueSorted(vlans), addresses, units: [...new Set(units)].sort(compare), ports };
}

function parseAddresses(v: Validator, field: string, value: unknown, vlans: number[]): { vlan: number; address: string }[] {
  let entries: [string, number, unknown][];
  if (Array.isArray(value)) {
    entries = value.map((item, i) => {
      const f = `${field}[${i}]`;
      const o = v.object(f, item);
      v.noUnknownKeys(f, o, ["vlan", "address"]);
      return [`${f}.address`, vlanNumber(v, `${f}.vlan`, o.vlan), o.address];
    });
  } else {
    entries = Object.entries(v.object(field, value)).map(([k, a]) => {
      const nr = Number(k);
      if (!/^\d+$/.test(k) || !(nr >= 1 && nr <= 255)) v.fail(`${field}.${k}`, "keyed by a vlan number from 1 to 255", k);
      return [`${field}.${k}`, nr, a];
    });
  }
  const seen = new Set<number>();
  const addresses = entries.map(([f, vlan, a]) => {
    const address = v.string(f, a);
    if (!IPV4.test(address)) v.fail(f, "an IPv4 address like 192.168.1.2", address);
    if (!vlans.includes(vlan)) v.fail(f, `an address on one of the node's vlans (${vlans.join(", ") || "none"}), not on vlan ${vlan}`, address);
    if (seen.has(vlan)) v.fail(f, `the only address on vlan ${vlan}`, address);
    seen.add(vlan);
    return { vlan, address };
  });
  return addresses.sort((a, b) => a.vlan - b.vlan);
}

function vlanNumber(v: Validator, field: string, value: unknown): number {
  const nr = v.number(field, value, { min: 1, integer: true });
  if (nr > 255) v.fail(field, "a vlan number from 1 to 255", nr);
  return nr;
}

function portList(v: Validator, field: string, value: unknown): number[] {
  const ports = v.array(field, value ?? [], (f, x) => {
    const port = v.number(f, x, { min: 1, integer: true });
    if (port > 65535) v.fail(f, "a port from 1 to 65535", port);
    return port;
  });
  return uniqueSorted(ports);
}

function uniqueSorted(numbers: number[]): number[] {
  return [...new Set(numbers)].sort((a, b) => a - b);
}

/** Code-unit order: stable across locales, the order Nix gives attribute names. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function readManifest(path: string): Promise<Manifest> {
  return parseManifest(await readJsonFile(path, `--manifest ${path}`), path);
}

/** The script's identifier for the only machine, as nixpkgs: `machine` when there is one node and none is named so. */
export function machineAlias(manifest: Manifest): string | undefined {
  return manifest.nodes.length === 1 && !manifest.nodes.some((n) => n.binding === "machine") ? "machine" : undefined;
}
