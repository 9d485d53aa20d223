import { NixosTestError } from "../lib/errors.js";

export { ConfigError, NixosTestError } from "../lib/errors.js";

/** How many lines of a command's output an error message shows. */
const OUTPUT_TAIL_LINES = 20;

export function tail(text: string, lines = OUTPUT_TAIL_LINES): string {
  const all = text.replace(/\n$/, "").split("\n");
  if (all.length <= lines) return all.join("\n");
  return [`... (${all.length - lines} earlier lines omitted)`, ...all.slice(-lines)].join("\n");
}

function indented(text: string): string {
  return text === ""
    ? "    (no output)"
    : text
        .split("\n")
        .map((l) => `    ${l}`)
        .join("\n");
}

/** Something about one machine went wrong; the machine's name is always known. */
export class MachineError extends NixosTestError {
  readonly machine: string;

  constructor(machine: string, message: string, options?: ErrorOptions & { code?: string }) {
    super(options?.code ?? "NTT_MACHINE", `${machine}: ${message}`, options);
    this.machine = machine;
  }
}

/** `succeed` saw a non-zero exit status (or `fail` saw zero). */
export class CommandFailedError extends MachineError {
  readonly command: string;
  readonly exitCode: number;
  readonly output: string;
  /** True when the command was expected to fail (`fail()`) but succeeded. */
  readonly unexpectedSuccess: boolean;

  constructor(machine: string, command: string, exitCode: number, output: string, unexpectedSuccess = false) {
    const what = unexpectedSuccess
      ? `command \`${command}\` unexpectedly succeeded`
      : `command \`${command}\` failed (exit code ${exitCode}${exitHint(exitCode)})`;
    super(machine, `${what}\n  output:\n${indented(tail(output))}`, { code: "NTT_COMMAND_FAILED" });
    this.command = command;
    this.exitCode = exitCode;
    this.output = output;
    this.unexpectedSuccess = unexpectedSuccess;
  }
}

function exitHint(code: number): string {
  if (code === 124) return ": the guest-side timeout killed it";
  if (code === 127) return ": command not found in the guest";
  if (code === 126) return ": not executable";
  if (code > 128 && code < 160) return `: killed by signal ${code - 128}`;
  return "";
}

/** `waitForUnit` saw the unit fail (or go inactive with nothing pending). */
export class UnitFailedError extends MachineError {
  readonly unit: string;
  readonly status: string;
  readonly journal: string;

  constructor(machine: string, unit: string, why: string, status: string, journal: string) {
    super(machine, `unit ${unit} ${why}\n  systemctl status:\n${indented(tail(status))}\n  last journal lines:\n${indented(tail(journal))}`, {
      code: "NTT_UNIT_FAILED",
    });
    this.unit = unit;
    this.status = status;
    this.journal = journal;
  }
}

/** A wait or command ran out of time. */
export class TimeoutError extends NixosTestError {
  readonly machine: string | undefined;
  readonly what: string;
  /** Seconds. */
  readonly timeout: number;

  constructor(what: string, timeout: number, machine?: string, detail?: string, options?: ErrorOptions) {
    const prefix = machine === undefined ? "" : `${machine}: `;
    super("NTT_TIMEOUT", `${prefix}${what} timed out after ${timeout} s${detail ? `\n${detail}` : ""}`, options);
    this.machine = machine;
    this.what = what;
    this.timeout = timeout;
  }
}

/** The machine's process (QEMU, systemd-nspawn) ended while the test still needed it. */
export class MachineCrashedError extends MachineError {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly serialTail: string;

  constructor(machine: string, doing: string, exitCode: number | null, signal: string | null, serialTail: string, process = "QEMU") {
    const how = signal !== null ? `was killed by ${signal}` : `exited with status ${exitCode}`;
    super(machine, `${process} ${how} while ${doing}\n  last ${process === "QEMU" ? "serial" : "console"} output:\n${indented(serialTail)}`, {
      code: "NTT_MACHINE_CRASHED",
    });
    this.exitCode = exitCode;
    this.signal = signal;
    this.serialTail = serialTail;
  }
}

/**
 * The guest's answer arrived incomplete. QEMU's virtconsole drops output when
 * the host does not read fast enough; the framing carries the length so that
 * such a loss surfaces here instead of as a silently shorter output.
 */
export class OutputLostError extends MachineError {
  readonly command: string;
  readonly expected: number;
  readonly received: number;

  constructor(machine: string, command: string, expected: number, received: number, why: string) {
    super(
      machine,
      `the output of \`${command}\` was damaged on its way from the guest (${why}: ${received} of ${expected} characters of the answer arrived). ` +
        "The host read the console too slowly or the guest wrote to /dev/hvc0 itself; the command itself may have succeeded.",
      { code: "NTT_OUTPUT_LOST" },
    );
    this.command = command;
    this.expected = expected;
    this.received = received;
  }
}

/**
 * The guest's backdoor shell announced itself again while a command ran
 * (switch_root out of the initrd, `systemctl restart backdoor`, kexec): that
 * command's answer can never come. The driver sets the new shell up and later
 * commands run there.
 */
export class ShellRestartedError extends MachineError {
  readonly command: string;

  constructor(machine: string, command: string) {
    super(
      machine,
      `the backdoor shell started again while \`${command}\` ran (switch_root, \`systemctl restart backdoor\`, kexec?), so its exit code and output are lost. ` +
        "Later commands run in the new shell. For a command that restarts the shell itself use execute(command, { checkOutput: false }), or switchRoot().",
      { code: "NTT_SHELL_RESTARTED" },
    );
    this.command = command;
  }
}

/** The whole test was stopped: global timeout, SIGINT/SIGTERM, or an explicit abort. */
export class TestAbortedError extends NixosTestError {
  constructor(reason: string, options?: ErrorOptions) {
    super("NTT_ABORTED", reason, options);
  }
}

/** A polling condition (see `pollingCondition`) stopped holding. */
export class PollingConditionFailedError extends NixosTestError {
  readonly description: string;

  constructor(description: string, options?: ErrorOptions) {
    super("NTT_POLLING_CONDITION", `Polling condition failed: ${description}`, options);
    this.description = description;
  }
}

/** QEMU answered a QMP command with `{"error": …}` (its class and description, as QEMU gave them). */
export class QmpError extends NixosTestError {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly description: string,
  ) {
    super("NTT_QMP", `QMP command ${command} failed: ${errorClass}: ${description}`);
  }
}

/** The test script asked for something impossible (bad arguments, unsupported feature). */
export class UsageError extends NixosTestError {
  constructor(message: string, options?: ErrorOptions) {
    super("NTT_USAGE", message, options);
  }
}
