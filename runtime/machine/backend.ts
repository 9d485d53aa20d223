import type { Poll } from "./framing.js";
import { MachineError } from "../errors.js";
import type { ExitStatus } from "./start-script.js";
import type { ShellTestHooks } from "./shell.js";

export type { ExitStatus };

/** The two kinds of machine nixpkgs' test framework has: `nodes` (QEMU) and `containers` (systemd-nspawn). */
export type MachineKind = "vm" | "container";

/**
 * What a backend can do beyond running commands. The test-facing methods that
 * need one are listed in CAPABILITY_METHODS; on a backend without it they are
 * a runtime error (`unsupported`) and, for typed test scripts, absent from the
 * machine's type (`ContainerMachine`).
 */
export type Capability = "screen" | "keys" | "monitor" | "qmp" | "nic";

/** Which test-facing methods need which capability (one list, read by the runtime check and the types). */
export const CAPABILITY_METHODS = {
  screen: [
    "screenshot",
    "getScreenText",
    "getScreenTextVariants",
    "waitForText",
    "getTtyText",
    "waitUntilTtyMatches",
    "dumpTtyContents",
    "waitForX",
    "getWindowNames",
    "waitForWindow",
  ],
  keys: ["sendKey", "sendChars", "reboot", "sendConsole"],
  monitor: ["sendMonitorCommand", "forwardPort"],
  qmp: ["qmp", "waitForQmpEvent"],
  nic: ["block", "unblock"],
} as const satisfies Record<Capability, readonly string[]>;

/** The methods a machine without every capability (a container) lacks. */
export type CapabilityMethod = (typeof CAPABILITY_METHODS)[Capability][number];

/** The answer to one command, whichever way it ran. */
export interface CommandAnswer {
  exitCode: number;
  timedOut: boolean;
  /** stdout, byte for byte. */
  output: Buffer;
}

/** What the machine hands a backend when it starts one. */
export interface LaunchContext {
  name: string;
  startScript: string;
  stateDir: string;
  sharedDir: string;
  env: Record<string, string>;
  allowReboot: boolean;
  /** Aborted by the global timeout and SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** Each console (VM) or boot/journal (container) line. */
  onLine(line: string): void;
  /** Debug chatter of the command channel (bytes outside any answer). */
  onJunk(text: string): void;
  /** Test hooks for the backdoor shell. */
  testHooks?: ShellTestHooks;
}

/**
 * One running instance of a machine (from one start to its exit). The
 * machine (core.ts) drives it; everything backend-specific lives behind this.
 */
export interface Boot {
  readonly pid: number;
  readonly running: boolean;
  /** Resolves once the process has exited and its output is drained. */
  readonly exited: Promise<ExitStatus>;
  readonly exitStatus: ExitStatus | undefined;
  /** Commands can run. */
  readonly connected: boolean;
  /** Milliseconds since the machine last said anything on its command channel or console. */
  readonly silentFor: number;
  /** What `waitReady` waits for, for the log and the silence hint. */
  readonly readiness: string;
  /** Resolves when commands can run; rejects if the machine went away first. */
  waitReady(signal: AbortSignal): Promise<void>;
  /**
   * Runs one command as root with the guest-side timeout `seconds` (0 = none),
   * which kills the command's whole process tree and answers exit code 124.
   * One at a time: the machine serialises calls. With `poll` the backend may
   * repeat the command itself until its exit status is the wanted one (the
   * answer is the last try's); running it once is correct too (the caller
   * tries again).
   */
  run(command: string, seconds: number, signal: AbortSignal, poll?: Poll): Promise<CommandAnswer>;
  /** Asks the guest to power off (the caller waits for `exited`). */
  powerOff(): Promise<void>;
  /** The guest is rebooting: the next command waits for it to be ready again. */
  expectNewShell(): void;
  /** The process exited: fail what is pending with `error`. */
  fail(error: Error): void;
  /** Ends the process (its whole process group) and waits until it is reaped. */
  kill(): Promise<void>;
  /** Releases sockets, files and anything else this boot created; safe twice. */
  close(): void;
}

export interface MachineBackend {
  readonly kind: MachineKind;
  readonly capabilities: ReadonlySet<Capability>;
  /**
   * Starts the machine and returns once its process runs (it may still be
   * booting). `crashed` turns "the process died while starting" into the
   * machine's crash error.
   */
  launch(context: LaunchContext, crashed: (boot: Boot, doing: string) => Promise<Error>): Promise<Boot>;
}

const KIND_NAMES: Record<MachineKind, string> = { vm: "a VM", container: "a container" };

const WHY: Record<Capability, string> = {
  screen: "it has no screen",
  keys: "it has no keyboard or serial console to type into",
  monitor: "it has no QEMU monitor",
  qmp: "it has no QMP socket",
  nic: "its links are not QEMU NICs",
};

/** The one error for a method a machine's backend cannot do. */
export function unsupported(machine: string, kind: MachineKind, capability: Capability, method: string): MachineError {
  return new MachineError(
    machine,
    `${method}() is not available on ${KIND_NAMES[kind]} machine (${WHY[capability]}); declare the machine in \`nodes\` (a VM) to use it`,
    { code: "NTT_UNSUPPORTED" },
  );
}
