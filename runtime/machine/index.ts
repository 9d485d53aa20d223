import { ScreenMachine } from "./screen.js";

export type { MachineConfig } from "./machine.js";
export type * from "./options.js";
export type { UnitOptions } from "./systemd.js";
export type { KeyOptions } from "./screen.js";

/**
 * A VM of the test, with the Python driver's methods in camelCase. Every
 * method is async; options (timeouts in seconds, an AbortSignal) go last.
 * Commands to one machine run one at a time; different machines run
 * concurrently, so `Promise.all([a.succeed(x), b.succeed(y)])` overlaps.
 *
 * The methods come in layers, one file each: lifecycle and primitives
 * (machine.ts), commands and waits (commands.ts), systemd (systemd.ts),
 * network (network.ts), screen (screen.ts).
 */
export class Machine extends ScreenMachine {}

export { QmpClient, QmpError, type QmpEvent } from "./qmp.js";
