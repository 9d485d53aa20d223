export { Machine, type ContainerMachine } from "./machine.js";
export type { MachineConfig } from "./core.js";
export type { MachineKind } from "./backend.js";
export type * from "./options.js";
export type { UnitOptions } from "./systemd.js";
export type { KeyOptions } from "./screen.js";
