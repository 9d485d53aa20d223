/**
 * nixos-test-ts runtime: the public API. Test scripts use the functions and
 * classes below; everything else in this package is internal.
 */
export { Driver, type DriverOptions, type SubtestResult } from "./driver/driver.js";
export { VLan } from "./host/vlan.js";
export { Machine, type ContainerMachine, type MachineKind } from "./machine/index.js";
export type { CommandOptions, ExecuteOptions, ExecuteResult, PortOptions, StartOptions, UnitOptions, WaitOptions } from "./machine/index.js";
export { QmpClient, type QmpEvent } from "./machine/index.js";
export { PollingCondition, type PollingConditionOptions } from "./driver/polling-condition.js";
export type { RetryOptions } from "./driver/polling.js";
export {
  CommandFailedError,
  ConfigError,
  MachineCrashedError,
  MachineError,
  NixosTestError,
  OutputLostError,
  ShellRestartedError,
  PollingConditionFailedError,
  QmpError,
  TestAbortedError,
  TimeoutError,
  UnitFailedError,
  UsageError,
} from "./errors.js";
export {
  createMachine,
  getMachine,
  getMachines,
  joinAll,
  log,
  pollingCondition,
  retry,
  serialStdoutOff,
  serialStdoutOn,
  startAll,
  subtest,
  t,
  type ScriptLog,
} from "./driver/test-api.js";
export type { Assertions } from "./driver/assertions.js";
export { currentDriver } from "./driver/current.js";
export { Logger, type LogLevel } from "./log/logger.js";
