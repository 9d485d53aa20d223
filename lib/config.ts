import { ConfigError } from "./errors.js";
import { readJsonFile, Validator } from "./validate.js";

/**
 * The driver configuration: the JSON that nixpkgs' test framework writes
 * (`driverConfigurationFile`) and passes with `--config`. Field names are
 * nixpkgs' own (snake_case) so the same file drives both drivers.
 */
export interface DriverConfigurationJson {
  vms: Record<string, { name: string; start_script: string }>;
  containers?: Record<string, { name: string; start_script: string }>;
  vlans: number[];
  global_timeout: number;
  enable_ssh_backdoor?: boolean;
  test_script: string;
}

/** The validated configuration, in the runtime's own terms. */
export interface DriverConfiguration {
  vms: VmConfiguration[];
  /** systemd-nspawn containers (nixpkgs' `containers.<name>`), started by `run-<name>-nspawn`. */
  containers: VmConfiguration[];
  vlans: number[];
  /** Seconds. */
  globalTimeout: number;
  testScript: string;
}

/** A machine's name and start script (`run-<name>-vm` or `run-<name>-nspawn`). */
export interface VmConfiguration {
  name: string;
  startScript: string;
}

export const DEFAULT_GLOBAL_TIMEOUT = 3600;

const TOP_LEVEL_KEYS = ["vms", "containers", "vlans", "global_timeout", "enable_ssh_backdoor", "test_script"] as const;

/** Validates parsed JSON; `source` names the file in error messages. */
export function parseDriverConfiguration(json: unknown, source: string): DriverConfiguration {
  const v = new Validator(source);
  const root = v.object("(top level)", json);
  v.noUnknownKeys("", root, TOP_LEVEL_KEYS);

  const machines = (section: "vms" | "containers", json: Record<string, unknown>): VmConfiguration[] =>
    Object.entries(json).map(([key, value]): VmConfiguration => {
      const field = `${section}.${key}`;
      const vm = v.object(field, value);
      v.noUnknownKeys(field, vm, ["name", "start_script"]);
      const name = vm.name === undefined ? key : v.string(`${field}.name`, vm.name);
      return { name, startScript: v.string(`${field}.start_script`, vm.start_script) };
    });
  const vmsJson = v.object("vms", root.vms);
  const vms = machines("vms", vmsJson);
  const containersJson = root.containers === undefined ? {} : v.object("containers", root.containers);
  const containers = machines("containers", containersJson);
  if (root.enable_ssh_backdoor !== undefined && v.boolean("enable_ssh_backdoor", root.enable_ssh_backdoor)) {
    throw new ConfigError(
      `${source}: enable_ssh_backdoor: the SSH backdoor is not supported by nixos-test-ts yet; use the interactive driver's shell instead`,
      "enable_ssh_backdoor",
    );
  }

  const vlans = v.array("vlans", root.vlans ?? [], (f, x) => v.number(f, x, { min: 1, integer: true }));
  const globalTimeout = root.global_timeout === undefined ? DEFAULT_GLOBAL_TIMEOUT : v.number("global_timeout", root.global_timeout);
  if (!(globalTimeout > 0)) v.fail("global_timeout", "a number > 0", globalTimeout);
  const testScript = v.string("test_script", root.test_script);

  // One namespace for VMs and containers, as in nixpkgs (both become names in the test script).
  const seen = new Map<string, string>();
  const named = [
    ...Object.keys(vmsJson).map((key, i) => [`vms.${key}`, (vms[i] as VmConfiguration).name] as const),
    ...Object.keys(containersJson).map((key, i) => [`containers.${key}`, (containers[i] as VmConfiguration).name] as const),
  ];
  for (const [field, name] of named) {
    const other = seen.get(name);
    if (other !== undefined) {
      throw new ConfigError(`${source}: ${field}.name: ${other} and ${field} are both named ${JSON.stringify(name)}; machine names must be unique across vms and containers`, `${field}.name`);
    }
    seen.set(name, field);
  }
  return { vms, containers, vlans: [...new Set(vlans)].sort((a, b) => a - b), globalTimeout, testScript };
}

export async function readDriverConfiguration(path: string): Promise<DriverConfiguration> {
  return parseDriverConfiguration(await readJsonFile(path, `--config ${path}`), `--config ${path}`);
}
