import { SystemdMachine } from "./systemd.js";

export type { MachineConfig } from "./machine.js";
export type * from "./options.js";
export type { UnitOptions } from "./systemd.js";

/**
 * A VM of the test, with the Python driver's methods in camelCase. Every
 * method is async; options (timeouts in seconds, an AbortSignal) go last.
 * Commands to one machine run one at a time; different machines run
 * concurrently, so `Promise.all([a.succeed(x), b.succeed(y)])` overlaps.
 */
export class Machine extends SystemdMachine {}
