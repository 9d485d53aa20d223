import { currentDriver } from "./current.js";
import type { Machine } from "./machine/index.js";
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

export function log(message: string): void {
  currentDriver().logger.log(message);
}

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
  if (m === undefined) throw new RangeError(`no machine named ${JSON.stringify(name)}; this test has: ${Object.keys(machines).join(", ")}`);
  return m;
}

/**
 * nixpkgs' `create_machine(start_command, name=…, keep_machine_state=…)`: a
 * further VM from a start command, e.g. to boot an installed disk image.
 * See Driver.createMachine.
 */
export function createMachine(startCommand: string, options?: { name?: string; keepMachineState?: boolean }): Machine {
  return currentDriver().createMachine(startCommand, options);
}
