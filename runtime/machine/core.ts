import { AsyncLocalStorage } from "node:async_hooks";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { abortable, abortReason, deadline, sleep, timeoutError } from "../async/abort.js";
import { attachLocation, captureCallSite } from "../async/callsite.js";
import { stepWithPause, type FailureDecision } from "../async/pause.js";
import { MachineCrashedError, MachineError, OutputLostError, ShellRestartedError, TimeoutError, UsageError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { SerialQueue } from "../async/queue.js";
import { unsupported, type Boot, type Capability, type CapabilityMethod, type MachineBackend, type MachineKind } from "./backend.js";
import { ConsoleLog } from "./console.js";
import { QemuBoot, exitedSoon } from "./qemu.js";
import type { QmpClient, QmpEvent } from "./qmp.js";
import type { Poll } from "./framing.js";
import { ShellDamagedError, ShellRestarted, type ShellTestHooks } from "./shell.js";
import { DEFAULT_COMMAND_TIMEOUT, QMP_EVENT_TIMEOUT, type ExecuteOptions, type ExecuteResult, type StartOptions, type WaitOptions } from "./options.js";

const apiDepth = new AsyncLocalStorage<true>();

/** How long the host waits beyond the guest-side timeout before it gives up on the guest itself. */
const HOST_GRACE_MS = 15_000;
/** nixpkgs logs a hint after this much silence from the backdoor. */
const SILENCE_HINT_MS = 30_000;
/** How long a process that closed its connections gets to be reaped before we call it alive. */
const EXIT_GRACE_MS = 2000;

export interface MachineConfig {
  name: string;
  startScript: string;
  /** Where `vm-state-<name>` and the shared directory live. */
  stateRoot: string;
  /** Shared by all machines: mounted at /tmp/shared in each guest. */
  sharedDir: string;
  /** Where screenshots and copied files go. */
  outDir: string;
  keepVmState: boolean;
  logger: Logger;
  /** Aborted by the global timeout and by SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** The interactive driver's Ctrl-C: aborts only the commands running now (see Driver.interrupt). */
  interruptSignal?: () => AbortSignal;
  /**
   * Asked when a test-facing call fails (pause on failure): "retry" runs it
   * again, "continue" makes it return undefined, "throw" lets the error go.
   */
  onFailure?: (error: unknown, machine: string) => Promise<FailureDecision>;
  /** Extra environment for the start script (`QEMU_VDE_SOCKET_<n>` from the vlans). */
  env?: Record<string, string>;
  /** Runs before every command and monitor command (the driver checks polling conditions here). */
  beforeCommand?: () => Promise<void>;
  /** The machine's backend (QEMU by default). */
  backend?: MachineBackend;
  /** Test hooks for the backdoor shell (the project's own tests). */
  testHooks?: ShellTestHooks;
}

/**
 * The lifecycle of one machine over its backend (QEMU or systemd-nspawn):
 * start, readiness, commands (serialised, with crash and loss reporting),
 * shutdown, crash. The test-facing methods are composed onto it in
 * `Machine` (machine.ts); members marked internal are for those features.
 */
export class MachineCore {
  readonly name: string;
  /**
   * The machine's state directory (its disk images, sockets, TMPDIR of the
   * start script). Writable as nixpkgs' `state_dir`: an assignment takes
   * effect at the next start.
   */
  stateDir: string;
  readonly kind: MachineKind;
  /** @internal */
  readonly config: MachineConfig;
  /** @internal */
  readonly logger: Logger;
  /** @internal */
  readonly console = new ConsoleLog();
  private readonly backend: MachineBackend;
  private readonly queue = new SerialQueue();
  private running: Boot | undefined;
  private starting: Promise<Boot> | undefined;
  private connecting: Promise<void> | undefined;
  private crashed: MachineCrashedError | undefined;
  private allowReboot = false;
  /** performance.now() of the last start, for the boot span. */
  private launchedAt = 0;
  /** Set when the test itself ended the machine (shutdown, crash, reboot): its exit is not a crash. */
  private exitExpected = new WeakSet<Boot>();

  constructor(config: MachineConfig, backend: MachineBackend) {
    this.config = config;
    this.name = config.name;
    this.logger = config.logger;
    this.backend = backend;
    this.kind = backend.kind;
    this.stateDir = join(config.stateRoot, `${backend.kind === "vm" ? "vm" : "container"}-state-${config.name}`);
    if (!config.keepVmState) rmSync(this.stateDir, { recursive: true, force: true });
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
  }

  /**
   * The host directory mounted at /tmp/shared in the guest (SHARED_DIR).
   * Writable as nixpkgs' `shared_dir`: an assignment takes effect at the
   * next start; copyFromHost/copyFromMachine use it at once.
   */
  get sharedDir(): string {
    return this.config.sharedDir;
  }

  set sharedDir(dir: string) {
    this.config.sharedDir = dir;
  }

  /** The machine's process runs (it may still be booting). */
  get booted(): boolean {
    return this.running?.running === true;
  }

  /** Commands can run (the backdoor shell answered, or the container finished booting). */
  get connected(): boolean {
    return this.booted && this.running?.connected === true;
  }

  isUp(): boolean {
    return this.connected;
  }

  /** QMP client of the running VM, for commands this API does not wrap. */
  get qmp(): QmpClient {
    this.require("qmp", "qmp");
    const qmp = this.vmBoot()?.qmp;
    if (qmp === undefined) throw new MachineError(this.name, "QMP is not available: the machine is not running; call start() first");
    return qmp;
  }

  /** The serial console (a container: its boot messages and journal) since the last start. */
  getConsoleLog(): string {
    return this.console.text();
  }

  log(message: string): void {
    this.logger.log(message, { machine: this.name });
  }

  /** Starts the machine and returns once it runs; it does not wait for the guest to boot. */
  async start(options: StartOptions = {}): Promise<void> {
    await this.api(async () => {
      this.crashed = undefined; // an explicit start after a crash is the user's decision
      await this.ensureStarted(options);
    });
  }

  /** Waits until commands can run (starting the machine first if needed). */
  async connect(options: WaitOptions = {}): Promise<void> {
    await this.api(() => this.ensureConnected(options.signal));
  }

  /** Waits for the machine to exit (it does not make it exit). */
  async waitForShutdown(options: WaitOptions = {}): Promise<void> {
    await this.api(() =>
      this.logger.nested(`waiting for the ${this.kindName} to power off`, { machine: this.name }, async () => {
        const r = this.running;
        if (r === undefined) return;
        this.exitExpected.add(r);
        const budget = deadline([this.signal, options.signal], options.timeout ?? null, timeoutError("waiting for shutdown", this.name));
        try {
          await abortable(r.exited, budget.signal);
        } finally {
          budget.dispose();
        }
      }),
    );
  }

  /** Powers the guest off the way nixpkgs does (`poweroff` inside it) and waits for it to exit. */
  async shutdown(options: WaitOptions = {}): Promise<void> {
    await this.api(async () => {
      if (!this.booted) return;
      await this.ensureConnected(options.signal);
      await this.queue.run(async () => {
        const r = this.running;
        if (r === undefined || !r.connected) return;
        this.exitExpected.add(r);
        await r.powerOff();
      });
      await this.waitForShutdown(options);
    });
  }

  /** Simulates a power cut: the machine's process is killed at once. */
  async crash(): Promise<void> {
    await this.api(() =>
      this.logger.nested("simulating a crash", { machine: this.name }, async () => {
        const r = this.running;
        if (r === undefined || !r.running) return;
        this.exitExpected.add(r);
        await r.kill();
      }),
    );
  }

  /** Sends an HMP command to QEMU's monitor and returns its answer. */
  async sendMonitorCommand(command: string, options: WaitOptions = {}): Promise<string> {
    return this.api(async () => {
      this.require("monitor", "sendMonitorCommand");
      await this.config.beforeCommand?.();
      await this.ensureStarted({});
      const monitor = this.vmBoot()?.monitor;
      if (monitor === undefined) throw new MachineError(this.name, "the monitor is not connected");
      this.logger.debug(`sending monitor command: ${command}`, { machine: this.name });
      return monitor.send(command, AbortSignal.any([this.signal, ...(options.signal ? [options.signal] : [])]));
    });
  }

  /** Types into the guest's serial console (QEMU's stdin). */
  sendConsole(text: string): void {
    this.require("keys", "sendConsole");
    const r = this.vmBoot();
    if (r === undefined || !r.running) throw new MachineError(this.name, "cannot write to the serial console: the machine is not running");
    r.process.writeConsole(text);
  }

  /** The first QMP event from now on that `filter` accepts; default timeout 600 s, as nixpkgs. */
  async waitForQmpEvent(filter: (event: QmpEvent) => boolean, options: WaitOptions = {}): Promise<QmpEvent> {
    return this.api(async () => {
      const qmp = this.qmp;
      const budget = deadline(
        [this.signal, options.signal],
        options.timeout === undefined ? QMP_EVENT_TIMEOUT : options.timeout,
        timeoutError("waiting for a QMP event", this.name),
      );
      try {
        return await qmp.waitForEvent(filter, budget.signal);
      } finally {
        budget.dispose();
      }
    });
  }

  /**
   * Runs a command in the guest as root; never throws for a non-zero exit
   * code (see `succeed`). The command runs under `set -euo pipefail`, stdin
   * is /dev/null, stderr goes to the serial log.
   */
  async execute(command: string, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    return this.api(() => this.run(command, options));
  }

  /**
   * The primitive behind every command: polling conditions, the queue, the
   * backend, crash and loss reporting. With `poll` the guest repeats the
   * command until its exit status is the wanted one (waits use this).
   * @internal
   */
  async run(command: string, options: ExecuteOptions, poll?: Poll): Promise<ExecuteResult> {
    await this.config.beforeCommand?.();
    const guestTimeout = options.timeout === undefined ? DEFAULT_COMMAND_TIMEOUT : options.timeout;
    const seconds = guestTimeout === null || guestTimeout === Infinity ? 0 : guestTimeout;
    const signals = [this.signal, options.signal];
    await this.ensureConnected(options.signal);
    return this.queue.run(async () => {
      const r = this.running;
      if (r === undefined || !r.connected || !r.running) throw await this.crashedWhile(`running \`${command}\``);
      const hostMs = seconds === 0 ? null : (seconds * 1000 + HOST_GRACE_MS) / 1000;
      const budget = deadline(
        signals,
        hostMs,
        (s) =>
          new TimeoutError(
            `command \`${command}\``,
            s,
            this.name,
            `the guest did not answer within its ${seconds} s timeout plus ${HOST_GRACE_MS / 1000} s: it may be hung or overloaded`,
          ),
      );
      const promise = r.run(command, seconds, budget.signal, poll);
      if (options.checkOutput === false) {
        promise.catch(() => undefined);
        budget.dispose();
        return result(-2, Buffer.alloc(0), false);
      }
      try {
        const answer = await promise;
        return result(answer.exitCode, answer.output, answer.timedOut);
      } catch (error) {
        if (error instanceof ShellDamagedError) {
          const d = error.damage;
          throw new OutputLostError(this.name, command, d.expected, d.received, d.why);
        }
        if (error instanceof ShellRestarted) throw new ShellRestartedError(this.name, command);
        if (!r.running || budget.signal.aborted === false) {
          if (!r.running || (await exitedSoon(r.exited, EXIT_GRACE_MS))) throw await this.crashedWhile(`running \`${command}\``);
        }
        throw error;
      } finally {
        budget.dispose();
      }
    });
  }

  /**
   * How often the backdoor shell of this boot announced itself again (see
   * `waitForShellRestart`); 0 without one.
   * @internal
   */
  shellRestarts(): number {
    return this.vmBoot()?.shell?.restarts ?? 0;
  }

  /**
   * Waits until the backdoor shell restarted more than `since` times and was
   * set up again (switchRoot).
   * @internal
   */
  async waitForShellRestart(since: number, options: WaitOptions = {}): Promise<void> {
    const shell = this.vmBoot()?.shell;
    if (shell === undefined) throw new UsageError(`${this.name}: no backdoor shell to wait for (switchRoot needs a VM)`);
    const budget = deadline(
      [this.signal, options.signal],
      options.timeout === undefined ? 900 : options.timeout,
      timeoutError("waiting for the backdoor shell to start again", this.name),
    );
    try {
      await shell.waitForRestart(since, budget.signal);
    } finally {
      budget.dispose();
    }
  }

  /** Benchmarks only: a raw exchange on the backdoor shell, serialised with commands (see BackdoorShell.rawExchange). @internal */
  async rawShellExchange(text: string, until: RegExp): Promise<string> {
    await this.ensureConnected(undefined);
    return this.queue.run(async () => {
      const shell = this.vmBoot()?.shell;
      if (shell === undefined) throw await this.crashedWhile("a raw exchange");
      return shell.rawExchange(text, until);
    });
  }

  /**
   * Called by `reboot`: the guest is going down; its next shell announces itself anew.
   * @internal
   */
  async rebooting(): Promise<void> {
    const r = this.running;
    if (r === undefined) return;
    r.expectNewShell();
    if (!this.allowReboot) {
      // QEMU runs with -no-reboot, so it exits; start it again, which is what a reboot means.
      this.exitExpected.add(r);
      await r.exited;
      await this.ensureStarted({ allowReboot: false });
    }
  }

  /** Ends the machine if it still runs and releases what it holds; safe to call any time, also twice. */
  async release(): Promise<void> {
    const r = this.running;
    if (r === undefined) return;
    this.exitExpected.add(r);
    if (r.running) await r.kill();
    r.close();
  }

  /**
   * Fails with the one "not on this kind of machine" error unless the backend can do `capability`.
   * @internal
   */
  require(capability: Capability, method: CapabilityMethod): void {
    if (!this.backend.capabilities.has(capability)) throw unsupported(this.name, this.kind, capability, method);
  }

  /**
   * Public methods run through here so that errors remember the test script's line.
   * @internal
   */
  async api<T>(fn: () => Promise<T>): Promise<T> {
    const site = captureCallSite();
    // Only the outermost call (the one the script made) may pause on failure.
    const outermost = apiDepth.getStore() === undefined;
    return stepWithPause(
      () => apiDepth.run(true, fn),
      (error) => {
        attachLocation(error, site);
        if (!outermost || this.config.onFailure === undefined || this.config.signal.aborted) return undefined;
        return this.config.onFailure(error, this.name);
      },
    );
  }

  /**
   * The signal of one operation: the whole test's, plus the interactive Ctrl-C.
   * @internal
   */
  get signal(): AbortSignal {
    const interrupt = this.config.interruptSignal?.();
    return interrupt === undefined ? this.config.signal : AbortSignal.any([this.config.signal, interrupt]);
  }

  /** @internal */
  async ensureConnected(signal: AbortSignal | undefined): Promise<void> {
    if (this.connected) return;
    this.connecting ??= this.waitForShell(signal).finally(() => {
      this.connecting = undefined;
    });
    await abortable(this.connecting, signal);
  }

  private get kindName(): string {
    return this.kind === "vm" ? "VM" : "container";
  }

  /** The running boot when it is QEMU's (capability checks come first). */
  private vmBoot(): QemuBoot | undefined {
    const r = this.running;
    return r instanceof QemuBoot ? r : undefined;
  }

  private async waitForShell(signal: AbortSignal | undefined): Promise<void> {
    const r = await this.ensureStarted({});
    const began = performance.now();
    await this.logger.nested(`waiting for the ${this.kindName} to finish booting`, { machine: this.name }, async () => {
      const waiting = r.waitReady(this.signal);
      waiting.catch(() => undefined); // raced below; its rejection may come after the race is over
      for (;;) {
        const tick = sleep(SILENCE_HINT_MS, this.signal).then(() => "tick" as const);
        tick.catch(() => undefined);
        // The shell's socket closes before QEMU's output is drained (which `exited` waits for): a closed shell is an exit too.
        const ready = waiting.then(
          () => "ready" as const,
          async (error: unknown) => {
            if (await exitedSoon(r.exited, EXIT_GRACE_MS)) return "exited" as const;
            throw error;
          },
        );
        const winner = await Promise.race([ready, tick, r.exited.then(() => "exited" as const)]);
        if (winner === "ready") break;
        if (winner === "exited") {
          throw await this.crashedWhile(
            this.kind === "vm" ? "booting (before the backdoor shell started)" : "booting (before systemd reported Startup finished)",
          );
        }
        if (signal?.aborted) throw abortReason(signal);
        if (r.silentFor >= SILENCE_HINT_MS) {
          this.logger.warning(
            this.kind === "vm"
              ? `Guest root shell did not produce any data for ${Math.round(r.silentFor / 1000)} s. ` +
                  "Check the serial log above: is the kernel still booting, did init fail? " +
                  "On NixOS, run 'systemctl status backdoor.service' in the VM (e.g. from the interactive driver)."
              : `The container said nothing for ${Math.round(r.silentFor / 1000)} s and has not finished booting. ` +
                  "Check its boot messages above: did systemd start, is a unit holding up the boot?",
            { machine: this.name },
          );
        }
      }
    });
    // The report's timeline shows the boot as start → shell.
    this.logger.span({ machine: this.name, label: "boot", kind: "boot", start: this.launchedAt, end: performance.now() });
    this.log(`connected to ${r.readiness} (connecting took ${((performance.now() - began) / 1000).toFixed(2)} seconds)`);
  }

  /** @internal */
  async ensureStarted(options: StartOptions): Promise<Boot> {
    if (this.running?.running) return this.running;
    if (this.crashed !== undefined) throw this.crashed;
    this.starting ??= this.launch(options).finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async launch(options: StartOptions): Promise<Boot> {
    if (this.config.signal.aborted) throw abortReason(this.config.signal);
    this.allowReboot = options.allowReboot ?? false;
    this.launchedAt = performance.now();
    // Every line since this start goes to a file too: getConsoleLog() is complete, memory stays bounded.
    // Next to the state directory, not in it: a container's state directory is its root file system.
    this.console.reset(`${this.stateDir}.console.txt`);
    // Either may have been assigned since the machine was created.
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.config.sharedDir, { recursive: true, mode: 0o700 });
    const r = await this.backend.launch(
      {
        name: this.name,
        startScript: this.config.startScript,
        stateDir: this.stateDir,
        sharedDir: this.config.sharedDir,
        env: this.config.env ?? {},
        allowReboot: this.allowReboot,
        signal: this.config.signal,
        onLine: (line) => {
          this.console.push(line);
          this.logger.serial(this.name, line);
        },
        onJunk: (text) => {
          const t = text.trim();
          if (t !== "") this.logger.debug(`Guest shell says: ${JSON.stringify(t)}`, { machine: this.name });
        },
        ...(this.config.testHooks === undefined ? {} : { testHooks: this.config.testHooks }),
      },
      async (boot, doing) => {
        await exitedSoon(boot.exited, EXIT_GRACE_MS);
        return this.crashError(doing, boot);
      },
    );
    this.running = r;
    void r.exited.then(() => this.onExit(r));
    this.log(`${this.kind === "vm" ? "QEMU" : "systemd-nspawn"} running (pid ${r.pid})`);
    return r;
  }

  private onExit(r: Boot): void {
    const status = r.exitStatus;
    const how = status?.signal ? `killed by ${status.signal}` : `exited with status ${status?.code}`;
    const what = this.kind === "vm" ? "QEMU" : "the container";
    if (this.exitExpected.has(r)) {
      this.log(`${what} ${how}`);
    } else {
      this.crashed = this.crashError("the test still needed it", r);
      this.logger.error(`${what} ${how} unexpectedly; last ${this.kind === "vm" ? "serial" : "console"} output:\n${this.console.tail(10)}`, {
        machine: this.name,
      });
    }
    r.fail(this.crashed ?? new MachineError(this.name, `the machine is not running (${what} ${how})`));
    r.close();
  }

  private async crashedWhile(doing: string): Promise<MachineCrashedError> {
    const r = this.running;
    if (r !== undefined) await exitedSoon(r.exited, EXIT_GRACE_MS);
    return this.crashError(doing, r);
  }

  private crashError(doing: string, r: Boot | undefined): MachineCrashedError {
    const status = r?.exitStatus;
    return new MachineCrashedError(
      this.name,
      doing,
      status?.code ?? null,
      status?.signal ?? null,
      this.console.tail(20),
      this.kind === "vm" ? "QEMU" : "systemd-nspawn",
    );
  }
}

function result(exitCode: number, bytes: Buffer, timedOut: boolean): ExecuteResult {
  let text: string | undefined;
  return {
    exitCode,
    bytes,
    timedOut,
    get output(): string {
      text ??= bytes.toString("utf8");
      return text;
    },
  };
}

export { UsageError };
