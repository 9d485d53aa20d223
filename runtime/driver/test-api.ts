import type { ScriptApiName } from "../../lib/script-symbols.js";
import { t } from "./assertions.js";
import { currentDriver } from "./current.js";
import { UsageError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import type { Machine } from "../machine/index.js";
import type { PollingCondition, PollingConditionOptions } from "./polling-condition.js";
import type { RetryOptions } from "./polling.js";

/**
 * The test script's functions, as importable exports. They act on the
 * driver that runs the script; the same names are also globals there.
 */

export function startAll(): Promise<void> {
  return currentDriver().startAll();
}

export function joinAll(): Promise<void> {
  return currentDriver().joinAll();
}

export function subtest<T>(name: string, fn: () => Promise<T>): Promise<T> {
  return currentDriver().subtest(name, fn);
}

export function retry(fn: (lastTry: boolean) => boolean | Promise<boolean>, options?: Omit<RetryOptions, "machine">): Promise<void> {
  return currentDriver().retry(fn, options);
}

export function pollingCondition(condition: () => unknown, options?: PollingConditionOptions): PollingCondition {
  return currentDriver().pollingCondition(condition, options);
}

/**
 * nixpkgs' `log`: a call logs a line (`log("x")`, as before), and the
 * logger's methods are there with upstream's names: `log.info`,
 * `log.warning`, `log.error`, and `log.nested(message, async () => …)` for
 * `with log.nested(message):` (a timed block in the log).
 */
export interface ScriptLog {
  (message: string): void;
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
  nested<T>(message: string, fn: () => Promise<T>): Promise<T>;
}

/** A `log` for the logger `logger()` returns at each call (the driver's own, or the current driver's). */
export function scriptLog(logger: () => Logger): ScriptLog {
  return Object.assign((message: string) => logger().log(message), {
    info: (message: string) => logger().log(message),
    warning: (message: string) => logger().warning(message),
    error: (message: string) => logger().error(message),
    nested: <T>(message: string, fn: () => Promise<T>) => logger().nested(message, {}, fn),
  });
}

export const log: ScriptLog = scriptLog(() => currentDriver().logger);

export { t };

export function serialStdoutOn(): void {
  currentDriver().logger.printSerial = true;
}

export function serialStdoutOff(): void {
  currentDriver().logger.printSerial = false;
}

/** The test's machines by name. */
export function getMachines(): Readonly<Record<string, Machine>> {
  return currentDriver().machines;
}

/** One machine by name, with a clear error for a typo. */
export function getMachine(name: string): Machine {
  const machines = currentDriver().machines;
  const m = machines[name];
  if (m === undefined) throw new UsageError(`no machine named ${JSON.stringify(name)}; this test has: ${Object.keys(machines).join(", ")}`);
  return m;
}

/**
 * Every function lib/script-symbols.ts lists for scripts, by name: a name
 * listed there without an export here does not compile.
 */
export const SCRIPT_API = { startAll, joinAll, subtest, retry, pollingCondition, log, t, serialStdoutOn, serialStdoutOff, createMachine } satisfies Record<
  ScriptApiName,
  unknown
>;

/**
 * nixpkgs' `create_machine(start_command, name=…, keep_machine_state=…)`: a
 * further VM from a start command, e.g. to boot an installed disk image.
 * See Driver.createMachine.
 */
export function createMachine(startCommand: string, options?: { name?: string; keepMachineState?: boolean }): Machine {
  return currentDriver().createMachine(startCommand, options);
}
