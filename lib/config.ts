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
  /** Seconds, or a duration string as nixpkgs' pydantic schema takes one: `"PT1H"`, `"01:00:00"`. */
  global_timeout: number | string;
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
  /**
   * Keys this driver does not know, each as a message: nixpkgs' driver
   * ignores them (a newer nixpkgs may write more), so they are warned about,
   * not refused.
   */
  warnings: string[];
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
  const warnings: string[] = [];
  const unknownKeys = (field: string, value: Record<string, unknown>, known: readonly string[]): void => {
    for (const key of Object.keys(value).filter((k) => !known.includes(k))) {
      const where = field === "" ? key : `${field}.${key}`;
      warnings.push(`${source}: unknown field ${where} ignored (known fields: ${known.join(", ")}); a newer nixpkgs may write it, or it is a typo`);
    }
  };
  unknownKeys("", root, TOP_LEVEL_KEYS);

  const machines = (section: "vms" | "containers", json: Record<string, unknown>): VmConfiguration[] =>
    Object.entries(json).map(([key, value]): VmConfiguration => {
      const field = `${section}.${key}`;
      const vm = v.object(field, value);
      unknownKeys(field, vm, ["name", "start_script"]);
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
  const globalTimeout = root.global_timeout === undefined ? DEFAULT_GLOBAL_TIMEOUT : timeoutSeconds(v, root.global_timeout);
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
      throw new ConfigError(
        `${source}: ${field}.name: ${other} and ${field} are both named ${JSON.stringify(name)}; machine names must be unique across vms and containers`,
        `${field}.name`,
      );
    }
    seen.set(name, field);
  }
  return { vms, containers, vlans: [...new Set(vlans)].sort((a, b) => a - b), globalTimeout, testScript, warnings };
}

const TIMEOUT_EXPECTED = 'a number of seconds > 0 or a duration such as "PT1H30M" (ISO 8601) or "01:30:00"';

/**
 * global_timeout as nixpkgs' driver reads it (a pydantic timedelta): seconds
 * as a number, an ISO 8601 duration (`P1DT2H`, `PT90M`, `PT1.5S`, `P1W`;
 * a year is 365 days and a month 30, as pydantic counts them), or
 * `[D days, ]HH:MM[:SS[.f]]`.
 */
function timeoutSeconds(v: Validator, value: unknown): number {
  let seconds: number | undefined;
  if (typeof value === "number") seconds = value;
  else if (typeof value === "string") seconds = parseDuration(value.trim());
  if (seconds === undefined || !Number.isFinite(seconds) || !(seconds > 0)) v.fail("global_timeout", TIMEOUT_EXPECTED, value);
  return seconds;
}

function parseDuration(text: string): number | undefined {
  const n = "(\\d+(?:[.,]\\d+)?)";
  const iso = new RegExp(`^P(?:${n}Y)?(?:${n}M)?(?:${n}W)?(?:${n}D)?(?:T(?:${n}H)?(?:${n}M)?(?:${n}S)?)?$`, "i").exec(text);
  if (iso !== null && !/^P$|T$/i.test(text)) {
    const [years, months, weeks, days, hours, minutes, secs] = iso.slice(1).map((x) => (x === undefined ? 0 : Number(x.replace(",", "."))));
    return ((((years ?? 0) * 365 + (months ?? 0) * 30 + (weeks ?? 0) * 7 + (days ?? 0)) * 24 + (hours ?? 0)) * 60 + (minutes ?? 0)) * 60 + (secs ?? 0);
  }
  const clock = /^(?:(\d+)(?: days?|d),\s*)?(\d+):(\d{2})(?::(\d{2}(?:\.\d+)?))?$/.exec(text);
  if (clock !== null) {
    const [days, hours, minutes, secs] = clock.slice(1).map((x) => (x === undefined ? 0 : Number(x)));
    return (((days ?? 0) * 24 + (hours ?? 0)) * 60 + (minutes ?? 0)) * 60 + (secs ?? 0);
  }
  return undefined;
}

export async function readDriverConfiguration(path: string): Promise<DriverConfiguration> {
  return parseDriverConfiguration(await readJsonFile(path, `--config ${path}`), `--config ${path}`);
}
