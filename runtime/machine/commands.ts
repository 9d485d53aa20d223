import { randomBytes } from "node:crypto";
import { cp, mkdir, mkdtemp, rm } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative } from "node:path";
import { deadline, sleep, timeoutError } from "../async/abort.js";
import { CommandFailedError, TimeoutError, UsageError } from "../errors.js";
import { retry, DEFAULT_WAIT_TIMEOUT } from "../driver/polling.js";
import { shellQuote } from "../../lib/shell.js";
import { normaliseChord } from "./keys.js";
import type { Machine } from "./machine.js";
import {
  DEFAULT_COMMAND_TIMEOUT,
  PROBE_TIMEOUT,
  splitCommands,
  type CommandOptions,
  type CommandsAndOptions,
  type ExecuteResult,
  type PortOptions,
  type WaitOptions,
} from "./options.js";

/** Commands, waits and file copies: everything built on the backdoor shell. */
export class Commands {
  constructor(private readonly m: Machine) {}

  /**
   * Runs each command; throws `CommandFailedError` on the first non-zero exit.
   * Returns the outputs, joined. As nixpkgs, no time limit of its own unless
   * `{ timeout }` is given (the global timeout bounds the run).
   */
  async succeed(...args: CommandsAndOptions): Promise<string> {
    return this.m.api(async () => {
      const { commands, options } = withoutDefaultTimeout(splitCommands(args));
      let output = "";
      for (const command of commands) {
        output += await this.m.logger.nested(`must succeed: ${command}`, { machine: this.m.name }, async () => {
          const r = await this.m.run(command, options);
          if (r.timedOut) throw this.guestTimeout(command, options, r);
          if (r.exitCode !== 0) throw new CommandFailedError(this.m.name, command, r.exitCode, r.output);
          return r.output;
        });
      }
      return output;
    });
  }

  /** Runs each command; throws `CommandFailedError` if one exits with 0. Returns the outputs, joined. No time limit unless `{ timeout }`, as `succeed`. */
  async fail(...args: CommandsAndOptions): Promise<string> {
    return this.m.api(async () => {
      const { commands, options } = withoutDefaultTimeout(splitCommands(args));
      let output = "";
      for (const command of commands) {
        output += await this.m.logger.nested(`must fail: ${command}`, { machine: this.m.name }, async () => {
          const r = await this.m.run(command, options);
          if (r.exitCode === 0) throw new CommandFailedError(this.m.name, command, 0, r.output, true);
          return r.output;
        });
      }
      return output;
    });
  }

  /** Repeats `command` (backing off from 50 ms to 1 s) until it exits with 0; returns its output. Default timeout 900 s. */
  async waitUntilSucceeds(command: string, options: WaitOptions = {}): Promise<string> {
    return this.waitForExit(command, options, true);
  }

  /** Repeats `command` until it exits non-zero; returns its output. Default timeout 900 s. */
  async waitUntilFails(command: string, options: WaitOptions = {}): Promise<string> {
    return this.waitForExit(command, options, false);
  }

  /**
   * Waits until `path` exists: nixpkgs' `test -e PATH`, unquoted, so globs,
   * `~user` and variables expand in the guest's shell (a glob matching
   * several files is an error of `test`, so the wait goes on, as upstream).
   */
  async waitForFile(path: string, options: WaitOptions = {}): Promise<void> {
    await this.waitQuietly(`waiting for file ${path}`, `test -e ${path}`, options, true);
  }

  /**
   * Waits until something listens on `port`: nixpkgs' `nc -z ADDRESS PORT` in
   * the guest; for localhost (the default) the guest's /proc/net tells the
   * same without starting `nc` for every try.
   */
  async waitForOpenPort(port: number, options: PortOptions = {}): Promise<void> {
    const address = options.address ?? "localhost";
    await this.waitQuietly(`waiting for TCP port ${port} on ${address}`, portTest(address, port), options, true);
  }

  async waitForClosedPort(port: number, options: PortOptions = {}): Promise<void> {
    const address = options.address ?? "localhost";
    await this.waitQuietly(`waiting for TCP port ${port} on ${address} to be closed`, portTest(address, port), options, false);
  }

  async waitForOpenUnixSocket(path: string, options: WaitOptions & { isDatagram?: boolean } = {}): Promise<void> {
    const flags = options.isDatagram ? "-uU" : "-U";
    await this.waitQuietly(`waiting for UNIX socket ${path}`, `nc -z ${flags} ${shellQuote(path)}`, options, true);
  }

  /**
   * Waits until `pattern` matches the serial console output not yet consumed
   * by an earlier call (it may span lines). Event-driven; as nixpkgs, without
   * a limit unless `timeout` is given (the global timeout still applies). A
   * string is a JavaScript regex with the `m` flag (Python's `$` also matches
   * before each line's newline); Python-only syntax is refused (see README).
   */
  async waitForConsoleText(pattern: string | RegExp, options: WaitOptions = {}): Promise<string> {
    return this.m.api(() =>
      this.m.logger.nested(`waiting for ${String(pattern)} to appear on the console`, { machine: this.m.name }, async () => {
        if (typeof pattern === "string") refusePythonRegex(pattern, this.m.name);
        // Multi-line, as Python's `$` also matches before the newline that ends each line.
        const regex =
          typeof pattern === "string" ? new RegExp(pattern, "m") : pattern.flags.includes("m") ? pattern : new RegExp(pattern.source, `${pattern.flags}m`);
        const timeout = options.timeout === undefined ? null : options.timeout;
        const budget = deadline(
          [this.m.signal, options.signal],
          timeout,
          timeoutError(`waiting for ${String(pattern)} on the console`, this.m.name, () => `  last console lines:\n${this.m.console.tail(10)}`),
        );
        try {
          return await this.m.console.waitFor(regex, budget.signal);
        } finally {
          budget.dispose();
        }
      }),
    );
  }

  /** Sleeps in the guest's time (`sleep N` in the guest), as nixpkgs does. */
  async sleep(seconds: number): Promise<void> {
    await this.m.api(async () => {
      await this.m.run(`sleep ${Number(seconds)}`, { timeout: seconds + PROBE_TIMEOUT });
    });
  }

  /** Presses a key or chord through QEMU's monitor: `ret`, `ctrl-alt-delete`, `ctrl+c`, `alt-f2`, `A`. */
  async sendKey(key: string, options: { delay?: number } = {}): Promise<void> {
    await this.m.api(async () => {
      const chord = normaliseChord(key);
      const answer = await this.m.sendMonitorCommand(`sendkey ${chord}`);
      if (answer.trim() !== "") throw new UsageError(`${this.m.name}: sendkey ${chord} failed: ${answer.trim()}`);
      await sleep((options.delay ?? 0.01) * 1000, this.m.signal);
    });
  }

  /** Reboots the guest with ctrl-alt-delete; the next command waits for the new backdoor shell. */
  async reboot(): Promise<void> {
    await this.m.api(() =>
      this.m.logger.nested("rebooting", { machine: this.m.name }, async () => {
        await this.m.ensureConnected(undefined);
        await this.sendKey("ctrl-alt-delete");
        await this.m.rebooting();
      }),
    );
  }

  /**
   * Copies a host file or directory into the guest at `target`, through the
   * shared directory (mounted at /tmp/shared). Modes are kept; the owner is root.
   */
  async copyFromHost(source: string, target: string, options: CommandOptions = {}): Promise<void> {
    await this.m.api(() =>
      this.m.logger.nested(`copying ${source} from the host to ${target}`, { machine: this.m.name }, async () => {
        await mkdir(this.m.config.sharedDir, { recursive: true });
        const hostTmp = await mkdtemp(join(this.m.config.sharedDir, "copy-"));
        try {
          const name = basename(source);
          await cp(source, join(hostTmp, name), { recursive: true, preserveTimestamps: true });
          const guestSrc = `/tmp/shared/${basename(hostTmp)}/${name}`;
          await this.mustSucceed(`mkdir -p ${shellQuote(dirname(target))} && cp -r ${shellQuote(guestSrc)} ${shellQuote(target)}`, options);
        } finally {
          await rm(hostTmp, { recursive: true, force: true });
        }
      }),
    );
  }

  /**
   * Copies a guest file or directory into the output directory (under
   * `targetDir`, relative to it), through the shared directory.
   */
  async copyFromMachine(source: string, targetDir = "", options: CommandOptions = {}): Promise<string> {
    return this.m.api(() =>
      this.m.logger.nested(`copying ${source} from the VM to the output directory`, { machine: this.m.name }, async () => {
        if (isAbsolute(targetDir) || relative(".", join(".", targetDir)).startsWith("..")) {
          throw new UsageError(`copyFromMachine: targetDir must be a relative path inside the output directory, got ${JSON.stringify(targetDir)}`);
        }
        const name = basename(source);
        const hop = `copy-${randomBytes(6).toString("hex")}`;
        const guestDir = `/tmp/shared/${hop}`;
        await mkdir(this.m.config.sharedDir, { recursive: true });
        try {
          await this.mustSucceed(`mkdir -p ${shellQuote(guestDir)} && cp -r ${shellQuote(source)} ${shellQuote(`${guestDir}/${name}`)}`, options);
          const destination = join(this.m.config.outDir, targetDir, name);
          await mkdir(dirname(destination), { recursive: true });
          await cp(join(this.m.config.sharedDir, hop, name), destination, { recursive: true, preserveTimestamps: true });
          return destination;
        } finally {
          await rm(join(this.m.config.sharedDir, hop), { recursive: true, force: true });
        }
      }),
    );
  }

  /** nixpkgs' older name of `copyFromMachine`. */
  async copyFromVm(source: string, targetDir = "", options: CommandOptions = {}): Promise<string> {
    return this.copyFromMachine(source, targetDir, options);
  }

  /** `run`, and an error for a non-zero exit or the guest-side timeout. @internal */
  async mustSucceed(command: string, options: CommandOptions): Promise<ExecuteResult> {
    const r = await this.m.run(command, options);
    if (r.timedOut) throw this.guestTimeout(command, options, r);
    if (r.exitCode !== 0) throw new CommandFailedError(this.m.name, command, r.exitCode, r.output);
    return r;
  }

  private guestTimeout(command: string, options: CommandOptions, r: ExecuteResult): TimeoutError {
    const seconds = options.timeout ?? DEFAULT_COMMAND_TIMEOUT;
    const out = r.output === "" ? "" : `  output before it was killed:\n${r.output.replace(/^/gm, "    ")}`;
    return new TimeoutError(
      `command \`${command}\``,
      seconds,
      this.m.name,
      `  the guest-side timeout killed it (exit code 124); pass { timeout: <seconds> } for a longer limit\n${out}`.trimEnd(),
    );
  }

  private async waitForExit(command: string, options: WaitOptions, success: boolean): Promise<string> {
    return this.m.api(() =>
      this.m.logger.nested(`waiting for ${success ? "success" : "failure"}: ${command}`, { machine: this.m.name }, async () => {
        const last: { result?: ExecuteResult } = {};
        try {
          await this.pollInGuest(`waiting for ${success ? "success" : "failure"} of \`${command}\``, command, options, success, last);
        } catch (error) {
          if (error instanceof TimeoutError && last.result !== undefined) {
            throw new TimeoutError(
              error.what,
              error.timeout,
              this.m.name,
              `  last exit code ${last.result.exitCode}, output:\n${last.result.output.replace(/^/gm, "    ")}`.trimEnd(),
            );
          }
          throw error;
        }
        return (last.result as ExecuteResult).output;
      }),
    );
  }

  /** A wait that is a shell test repeated until it gives the wanted answer. */
  private async waitQuietly(what: string, test: string, options: WaitOptions, success: boolean): Promise<void> {
    await this.m.api(() => this.m.logger.nested(what, { machine: this.m.name }, () => this.pollInGuest(what, test, options, success, {})));
  }

  /**
   * nixpkgs' retry loop, run in the guest: the shell repeats `command` with
   * pauses of its own (no round trip per try, so a wait returns tens of
   * milliseconds after its condition holds) until its exit status is the
   * wanted one or the wait's time is up; the host's retry() only covers what
   * the guest cannot (a backend that runs a command once, the last try).
   * Each try runs under the wait's timeout, as nixpkgs' tries do.
   */
  private async pollInGuest(what: string, command: string, options: WaitOptions, success: boolean, last: { result?: ExecuteResult }): Promise<void> {
    const limit = options.timeout === undefined ? DEFAULT_WAIT_TIMEOUT : options.timeout;
    const unlimited = limit === null || limit === Infinity;
    const began = performance.now();
    await retry(
      async (_lastTry, signal) => {
        // The guest stops a little before the host's deadline, so its answer, not a cancellation, ends the wait.
        const remainingMs = unlimited ? null : Math.max(0, (limit as number) * 1000 - (performance.now() - began) - 200);
        const timeout = remainingMs === null ? null : Math.ceil(remainingMs / 1000) + PROBE_TIMEOUT;
        last.result = await this.m.run(
          command,
          { ...(signal ? { signal } : {}), timeout },
          { until: success ? "success" : "failure", durationMs: remainingMs },
        );
        return (last.result.exitCode === 0) === success;
      },
      { ...options, what, machine: this.m.name },
    );
  }
}

/** nixpkgs' succeed/fail pass `timeout=None` to execute: no guest-side limit unless one is asked for. */
function withoutDefaultTimeout(split: { commands: string[]; options: CommandOptions }): { commands: string[]; options: CommandOptions } {
  return { commands: split.commands, options: split.options.timeout === undefined ? { ...split.options, timeout: null } : split.options };
}

/**
 * Python's `re` syntax that JavaScript reads differently or not at all: named
 * groups `(?P<name>…)`/`(?P=name)`, inline flags `(?i)`, `(?s)`, `(?x)`, …,
 * `\A`/`\Z`. Refused with the JavaScript form, rather than matching something else.
 */
export function refusePythonRegex(pattern: string, machine: string): void {
  const hints: Array<[RegExp, string]> = [
    [/\(\?P<\w+>/, "a named group is (?<name>…) in JavaScript, not (?P<name>…)"],
    [/\(\?P=\w+\)/, "a back-reference to a named group is \\k<name> in JavaScript, not (?P=name)"],
    [/\(\?[aiLmsux]+\)/, "inline flags like (?i) do not exist in JavaScript: pass a RegExp with flags, e.g. /text/i"],
    [/\(\?[aiLmsux-]+:/, "scoped inline flags like (?i:…) do not exist in JavaScript: pass a RegExp with flags, e.g. /text/i"],
    [/(^|[^\\])\\[AZ]/, "\\A and \\Z are Python's; in JavaScript use ^ and $ (without the m flag: pass a RegExp)"],
  ];
  for (const [syntax, hint] of hints) {
    if (syntax.test(pattern)) throw new UsageError(`${machine}: waitForConsoleText(${JSON.stringify(pattern)}): Python regex syntax: ${hint}`);
  }
}

/** A guest command that exits 0 when a TCP connection to address:port would be accepted. */
function portTest(address: string, port: number): string {
  checkPort(port);
  if (address === "localhost" || address === "127.0.0.1" || address === "::1") return `__ntt_listening ${port}`;
  return `nc -z ${shellQuote(address)} ${port}`;
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`a port must be an integer from 1 to 65535, got ${String(port)}`);
  return port;
}
