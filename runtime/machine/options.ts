/** Options every command and wait accepts. Durations are in seconds, as in nixpkgs. */
export interface WaitOptions {
  /** Seconds; `null` or `Infinity` waits without limit (the global timeout still applies). */
  timeout?: number | null;
  /** Cancels the call (the global timeout and Ctrl-C cancel every call anyway). */
  signal?: AbortSignal;
}

export interface CommandOptions extends WaitOptions {
  /**
   * Guest-side limit in seconds, default 900 (nixpkgs' `execute` default):
   * when it expires the command's process tree is killed and the exit code is 124.
   */
  timeout?: number | null;
}

export interface ExecuteOptions extends CommandOptions {
  /** Accepted for compatibility with nixpkgs; the exit code is always known here. */
  checkReturn?: boolean;
  /** `false`: send the command and do not wait for it (nixpkgs returns exit code -2). */
  checkOutput?: boolean;
}

export interface ExecuteResult {
  exitCode: number;
  /** stdout as UTF-8; invalid byte sequences become U+FFFD. Use `bytes` for binary output. */
  readonly output: string;
  /** stdout exactly as the command wrote it. */
  bytes: Buffer;
  /** The guest-side timeout killed the command (exitCode is then 124). */
  timedOut: boolean;
}

export interface PortOptions extends WaitOptions {
  /** Where to connect from inside the guest; default `localhost`. */
  address?: string;
}

export interface StartOptions {
  /** Let the guest reboot instead of QEMU exiting (`-no-reboot` is left out). */
  allowReboot?: boolean;
}

/** nixpkgs' guest-side limit of `execute` and the waits that repeat a command, in seconds. */
export const DEFAULT_COMMAND_TIMEOUT = 900;
/** nixpkgs' default wait for a QMP event, in seconds. */
export const QMP_EVENT_TIMEOUT = 600;
/** Guest-side limit of the short probes the waits and helpers run (`nc -z`, `systemctl show`, `xwininfo`), in seconds. */
export const PROBE_TIMEOUT = 60;

/** `succeed("a", "b", { timeout: 5 })`: trailing options after any number of commands. */
export type CommandsAndOptions = [string, ...string[]] | [string, ...string[], CommandOptions];

export function splitCommands(args: ReadonlyArray<string | CommandOptions>): { commands: string[]; options: CommandOptions } {
  const last = args[args.length - 1];
  const options = typeof last === "object" && last !== null ? last : {};
  const commands = args.filter((a): a is string => typeof a === "string");
  if (commands.length !== args.length - (options === last ? 1 : 0)) {
    throw new TypeError("commands must be strings, with at most one options object at the end");
  }
  return { commands, options };
}
