import type { MachineBackend, MachineKind } from "./backend.js";
import { ContainerBackend } from "./container.js";
import { QemuBackend } from "./qemu.js";

export { Machine, type ContainerMachine } from "./machine.js";
export type { MachineConfig } from "./core.js";
export type { ShellTestHooks } from "./shell.js";
export type { MachineKind } from "./backend.js";
export type * from "./options.js";
export type { UnitOptions } from "./systemd.js";
export type { KeyOptions } from "./screen.js";

export { QmpClient, type QmpEvent } from "./qmp.js";

/** The backend a machine of `kind` runs on; the driver picks it, nothing outside runtime/machine/ names a backend. */
export function machineBackend(kind: MachineKind): MachineBackend {
  return kind === "container" ? new ContainerBackend() : new QemuBackend();
}
