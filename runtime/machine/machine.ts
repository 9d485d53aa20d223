import { AsyncLocalStorage } from "node:async_hooks";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { abortable, abortReason, deadline, sleep, timeoutError } from "../abort.js";
import { attachLocation, captureCallSite } from "../callsite.js";
import { MachineCrashedError, MachineError, OutputLostError, TimeoutError, UsageError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { SerialQueue } from "../queue.js";
import { ConsoleLog } from "./console.js";
import { Monitor } from "./monitor.js";
import { QemuProcess } from "./process.js";
import { QmpClient, type QmpEvent } from "./qmp.js";
import { BackdoorShell, ShellDamagedError } from "./shell.js";
import { Listener, socketPaths, type SocketPaths } from "./sockets.js";
import { DEFAULT_COMMAND_TIMEOUT, type ExecuteOptions, type ExecuteResult, type StartOptions, type WaitOptions } from "./options.js";

const apiDepth = new AsyncLocalStorage<true>();

/** How long the host waits beyond the guest-side timeout before it gives up on the guest itself. */
const HOST_GRACE_MS = 15_000;
/** nixpkgs logs a hint after this much silence from the backdoor. */
const SILENCE_HINT_MS = 30_000;

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
  onFailure?: (error: unknown, machine: string) => Promise<"retry" | "continue" | "throw">;
  /** Extra environment for the start script (`QEMU_VDE_SOCKET_<n>` from the vlans). */
  env?: Record<string, string>;
  /** Runs before every command and monitor command (the driver checks polling conditions here). */
  beforeCommand?: () => Promise<void>;
  /** Test hooks: throttle the backdoor reader, turn off flow control (see ShellHooks). */
  shellReadDelayMs?: number;
  shellNoFlowControl?: boolean;
}

interface Running {
  process: QemuProcess;
  sockets: SocketPaths;
  listeners: Listener[];
  shell: BackdoorShell | undefined;
  monitor: Monitor | undefined;
  qmp: QmpClient | undefined;
  /** Set when the test itself ended the VM (shutdown, crash, reboot): its exit is not a crash. */
  exitExpected: boolean;
}

/**
 * The core of a VM: its QEMU process, the backdoor shell and the monitors.
 * The test-facing methods are in `Machine` (machine/index.ts); this class
 * holds the lifecycle and the primitives they are built on.
 */
export class MachineCore {
  readonly name: string;
  readonly stateDir: string;
  protected readonly config: MachineConfig;
  protected readonly logger: Logger;
  protected readonly console = new ConsoleLog();
  private readonly queue = new SerialQueue();
  private running: Running | undefined;
  private starting: Promise<Running> | undefined;
  private connecting: Promise<void> | undefined;
  private crashed: MachineCrashedError | undefined;
  private allowReboot = false;
  /** performance.now() of the last QEMU start, for the boot span. */
  private launchedAt = 0;

  constructor(config: MachineConfig) {
    this.config = config;
    this.name = config.name;
    this.logger = config.logger;
    this.stateDir = join(config.stateRoot, `vm-state-${config.name}`);
    if (!config.keepVmState) rmSync(this.stateDir, { recursive: true, force: true });
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
  }

  /** QEMU runs (it may still be booting). */
  get booted(): boolean {
    return this.running?.process.running === true;
  }

  /** The backdoor shell answered. */
  get connected(): boolean {
    return this.booted && this.running?.shell?.connected === true;
  }

  isUp(): boolean {
    return this.connected;
  }

  /** QMP client of the running VM, for commands this API does not wrap. */
  get qmp(): QmpClient {
    const qmp = this.running?.qmp;
    if (qmp === undefined) throw new MachineError(this.name, "QMP is not available: the machine is not running; call start() first");
    return qmp;
  }

  /** The serial console since the last start. */
  getConsoleLog(): string {
    return this.console.text();
  }

  log(message: string): void {
    this.logger.log(message, { machine: this.name });
  }

  /** Starts QEMU and returns once it runs; it does not wait for the guest to boot. */
  async start(options: StartOptions = {}): Promise<void> {
    await this.api(async () => {
      this.crashed = undefined; // an explicit start after a crash is the user's decision
      await this.ensureStarted(options);
    });
  }

  /** Waits until the backdoor root shell answers (starting the VM first if needed). */
  async connect(options: WaitOptions = {}): Promise<void> {
    await this.api(() => this.ensureConnected(options.signal));
  }

  /** Waits for QEMU to exit (it does not make it exit). */
  async waitForShutdown(options: WaitOptions = {}): Promise<void> {
    await this.api(() =>
      this.logger.nested("waiting for the VM to power off", { machine: this.name }, async () => {
        const r = this.running;
        if (r === undefined) return;
        r.exitExpected = true;
        const budget = deadline([this.signal, options.signal], options.timeout ?? null, timeoutError("waiting for shutdown", this.name));
        try {
          await abortable(r.process.exited, budget.signal);
        } finally {
          budget.dispose();
        }
      }),
    );
  }

  /** Powers the guest off the way nixpkgs does (`poweroff` in the backdoor shell) and waits for QEMU to exit. */
  async shutdown(options: WaitOptions = {}): Promise<void> {
    await this.api(async () => {
      if (!this.booted) return;
      await this.ensureConnected(options.signal);
      await this.queue.run(async () => {
        const r = this.running;
        if (r?.shell === undefined) return;
        r.exitExpected = true;
        r.shell.writeRaw("poweroff\n");
      });
      await this.waitForShutdown(options);
    });
  }

  /** Simulates a power cut: QEMU quits at once. */
  async crash(): Promise<void> {
    await this.api(() =>
      this.logger.nested("simulating a crash", { machine: this.name }, async () => {
        const r = this.running;
        if (r === undefined || !r.process.running) return;
        r.exitExpected = true;
        await r.monitor?.send("quit").catch(() => undefined);
        await r.process.kill("SIGKILL");
      }),
    );
  }

  /** Sends an HMP command to QEMU's monitor and returns its answer. */
  async sendMonitorCommand(command: string, options: WaitOptions = {}): Promise<string> {
    return this.api(async () => {
      await this.config.beforeCommand?.();
      const r = await this.ensureStarted({});
      if (r.monitor === undefined) throw new MachineError(this.name, "the monitor is not connected");
      this.logger.debug(`sending monitor command: ${command}`, { machine: this.name });
      return r.monitor.send(command, AbortSignal.any([this.signal, ...(options.signal ? [options.signal] : [])]));
    });
  }

  /** Types into the guest's serial console (QEMU's stdin). */
  sendConsole(text: string): void {
    const r = this.running;
    if (r === undefined || !r.process.running) throw new MachineError(this.name, "cannot write to the serial console: the machine is not running");
    r.process.writeConsole(text);
  }

  /** The first QMP event from now on that `filter` accepts; default timeout 600 s, as nixpkgs. */
  async waitForQmpEvent(filter: (event: QmpEvent) => boolean, options: WaitOptions = {}): Promise<QmpEvent> {
    return this.api(async () => {
      const qmp = this.qmp;
      const budget = deadline([this.signal, options.signal], options.timeout === undefined ? 600 : options.timeout, timeoutError("waiting for a QMP event", this.name));
      try {
        return await qmp.waitForEvent(filter, budget.signal);
      } finally {
        budget.dispose();
      }
    });
  }

  /**
   * Runs a command in the guest's root shell; never throws for a non-zero
   * exit code (see `succeed`). The command runs under `set -euo pipefail`,
   * stdin is /dev/null, stderr goes to the serial log.
   */
  async execute(command: string, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    return this.api(() => this.run(command, options));
  }

  /** The primitive behind every command: polling conditions, the queue, the shell, crash and loss reporting. */
  protected async run(command: string, options: ExecuteOptions): Promise<ExecuteResult> {
    await this.config.beforeCommand?.();
    const guestTimeout = options.timeout === undefined ? DEFAULT_COMMAND_TIMEOUT : options.timeout;
    const seconds = guestTimeout === null || guestTimeout === Infinity ? 0 : guestTimeout;
    const signals = [this.signal, options.signal];
    await this.ensureConnected(options.signal);
    return this.queue.run(async () => {
      const r = this.running;
      if (r?.shell === undefined || !r.process.running) throw await this.crashedWhile(`running \`${command}\``);
      const hostMs = seconds === 0 ? null : (seconds * 1000 + HOST_GRACE_MS) / 1000;
      const budget = deadline(signals, hostMs, (s) =>
        new TimeoutError(`command \`${command}\``, s, this.name, `the guest did not answer within its ${seconds} s timeout plus ${HOST_GRACE_MS / 1000} s: it may be hung or overloaded`),
      );
      const promise = r.shell.run(command, seconds, budget.signal);
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
        if (!r.process.running || budget.signal.aborted === false) {
          if (!r.process.running || (await this.exitedSoon(r))) throw await this.crashedWhile(`running \`${command}\``);
        }
        throw error;
      } finally {
        budget.dispose();
      }
    });
  }

  /** Benchmarks only: a raw exchange on the backdoor shell, serialised with commands (see BackdoorShell.rawExchange). */
  async rawShellExchange(text: string, until: RegExp): Promise<string> {
    await this.ensureConnected(undefined);
    return this.queue.run(async () => {
      const shell = this.running?.shell;
      if (shell === undefined) throw await this.crashedWhile("a raw exchange");
      return shell.rawExchange(text, until);
    });
  }

  /** Called by `reboot`: the guest is going down; its next shell announces itself anew. */
  protected async rebooting(): Promise<void> {
    const r = this.running;
    if (r === undefined) return;
    r.shell?.expectNewShell();
    if (!this.allowReboot) {
      // QEMU runs with -no-reboot, so it exits; start it again, which is what a reboot means.
      r.exitExpected = true;
      await r.process.exited;
      await this.ensureStarted({ allowReboot: false });
    }
  }

  /** Ends QEMU if it still runs and releases sockets; safe to call any time, also twice. */
  async release(): Promise<void> {
    const r = this.running;
    if (r === undefined) return;
    r.exitExpected = true;
    if (r.process.running) await r.process.kill("SIGKILL");
    this.closeConnections(r);
  }

  /** Public methods run through here so that errors remember the test script's line. */
  protected async api<T>(fn: () => Promise<T>): Promise<T> {
    const site = captureCallSite();
    // Only the outermost call (the one the script made) may pause on failure.
    const outermost = apiDepth.getStore() === undefined;
    for (;;) {
      try {
        return await apiDepth.run(true, fn);
      } catch (error) {
        attachLocation(error, site);
        if (!outermost || this.config.onFailure === undefined || this.config.signal.aborted) throw error;
        const decision = await this.config.onFailure(error, this.name);
        if (decision === "retry") continue;
        if (decision === "continue") return undefined as T;
        throw error;
      }
    }
  }

  /** The signal of one operation: the whole test's, plus the interactive Ctrl-C. */
  protected get signal(): AbortSignal {
    const interrupt = this.config.interruptSignal?.();
    return interrupt === undefined ? this.config.signal : AbortSignal.any([this.config.signal, interrupt]);
  }

  protected async ensureConnected(signal: AbortSignal | undefined): Promise<void> {
    if (this.connected) return;
    this.connecting ??= this.waitForShell(signal).finally(() => {
      this.connecting = undefined;
    });
    await abortable(this.connecting, signal);
  }

  private async waitForShell(signal: AbortSignal | undefined): Promise<void> {
    const r = await this.ensureStarted({});
    const shell = r.shell;
    if (shell === undefined) throw await this.crashedWhile("connecting to the backdoor shell");
    const began = performance.now();
    await this.logger.nested("waiting for the VM to finish booting", { machine: this.name }, async () => {
      const waiting = abortable(shell.waitForMarker(), this.signal);
      waiting.catch(() => undefined); // raced below; its rejection may come after the race is over
      for (;;) {
        const tick = sleep(SILENCE_HINT_MS, this.signal).then(() => "tick" as const);
        tick.catch(() => undefined);
        // The shell's socket closes before QEMU's output is drained (which `exited` waits for): a closed shell is an exit too.
        const ready = waiting.then(
          () => "ready" as const,
          async (error: unknown) => {
            if (await this.exitedSoon(r)) return "exited" as const;
            throw error;
          },
        );
        const winner = await Promise.race([ready, tick, r.process.exited.then(() => "exited" as const)]);
        if (winner === "ready") break;
        if (winner === "exited") throw await this.crashedWhile("booting (before the backdoor shell started)");
        if (signal?.aborted) throw abortReason(signal);
        if (shell.silentFor >= SILENCE_HINT_MS) {
          this.logger.warning(
            `Guest root shell did not produce any data for ${Math.round(shell.silentFor / 1000)} s. ` +
              "Check the serial log above: is the kernel still booting, did init fail? " +
              "On NixOS, run 'systemctl status backdoor.service' in the VM (e.g. from the interactive driver).",
            { machine: this.name },
          );
        }
      }
    });
    // The report's timeline shows the boot as start → shell.
    this.logger.span({ machine: this.name, label: "boot", kind: "boot", start: this.launchedAt, end: performance.now() });
    this.log(`connected to guest root shell (connecting took ${((performance.now() - began) / 1000).toFixed(2)} seconds)`);
  }

  protected async ensureStarted(options: StartOptions): Promise<Running> {
    if (this.running?.process.running) return this.running;
    if (this.crashed !== undefined) throw this.crashed;
    this.starting ??= this.launch(options).finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async launch(options: StartOptions): Promise<Running> {
    if (this.config.signal.aborted) throw abortReason(this.config.signal);
    this.allowReboot = options.allowReboot ?? false;
    this.launchedAt = performance.now();
    // Every line since this start goes to a file too: getConsoleLog() is complete, memory stays bounded.
    this.console.reset(join(this.stateDir, "console.txt"));
    const sockets = socketPaths(this.stateDir);
    const monitorListener = await Listener.listen(sockets.monitor);
    const shellListener = await Listener.listen(sockets.shell);
    rmSync(sockets.qmp, { force: true });
    const args = [
      "-qmp", `unix:${sockets.qmp},server=on,wait=off`,
      "-monitor", `unix:${sockets.monitor}`,
      "-chardev", `socket,id=shell,path=${sockets.shell}`,
      "-device", "virtio-serial",
      "-device", "virtconsole,chardev=shell",
      "-device", "virtio-rng-pci",
      "-serial", "stdio",
      ...(this.allowReboot ? [] : ["-no-reboot"]),
      ...(process.env.DISPLAY || process.env.WAYLAND_DISPLAY ? [] : ["-nographic"]),
    ];
    const env = {
      ...process.env,
      ...this.config.env,
      TMPDIR: this.stateDir,
      SHARED_DIR: this.config.sharedDir,
      USE_TMPDIR: "1",
      NIX_EFI_VARS: join(this.stateDir, `${this.name}-efi-vars.fd`),
    };
    const qemu = new QemuProcess({
      startScript: this.config.startScript,
      args,
      cwd: this.stateDir,
      env,
      onLine: (line) => {
        this.console.push(line);
        this.logger.serial(this.name, line);
      },
    });
    const r: Running = {
      process: qemu,
      sockets,
      listeners: [monitorListener, shellListener],
      shell: undefined,
      monitor: undefined,
      qmp: undefined,
      exitExpected: false,
    };
    this.running = r;
    void qemu.exited.then(() => this.onExit(r));
    try {
      const [monitorSocket, shellSocket] = await Promise.race([
        Promise.all([monitorListener.accepted(), shellListener.accepted()]),
        qemu.exited.then(async () => {
          throw await this.crashedWhile("starting (QEMU exited before it connected its sockets)");
        }),
        abortable(new Promise<never>(() => undefined), this.config.signal),
      ]);
      r.monitor = new Monitor(monitorSocket);
      r.shell = new BackdoorShell(shellSocket, {
        onJunk: (text) => {
          const t = text.trim();
          if (t !== "") this.logger.debug(`Guest shell says: ${JSON.stringify(t)}`, { machine: this.name });
        },
        ...(this.config.shellReadDelayMs === undefined ? {} : { readDelayMs: this.config.shellReadDelayMs }),
        ...(this.config.shellNoFlowControl === true ? { noFlowControl: true } : {}),
      });
      r.qmp = await QmpClient.connect(sockets.qmp, this.config.signal);
      this.log(`QEMU running (pid ${qemu.pid})`);
      return r;
    } catch (error) {
      // If QEMU died, that is the story (with its output), not the socket that closed.
      const died = !qemu.running || (await this.exitedSoon(r));
      await qemu.kill("SIGKILL");
      this.closeConnections(r);
      if (died && !this.config.signal.aborted) throw this.crashError("starting", r);
      throw error;
    }
  }

  private onExit(r: Running): void {
    const status = r.process.exitStatus;
    const how = status?.signal ? `killed by ${status.signal}` : `exited with status ${status?.code}`;
    if (r.exitExpected) {
      this.log(`QEMU ${how}`);
    } else {
      this.crashed = this.crashError("the test still needed it", r);
      this.logger.error(`QEMU ${how} unexpectedly; last serial output:\n${this.console.tail(10)}`, { machine: this.name });
    }
    r.shell?.fail(this.crashed ?? new MachineError(this.name, `the machine is not running (QEMU ${how})`));
    this.closeConnections(r);
  }

  private closeConnections(r: Running): void {
    r.shell?.destroy();
    r.monitor?.close();
    r.qmp?.close();
    for (const l of r.listeners) l.close();
    if (r.sockets.fallbackDir !== undefined) rmSync(r.sockets.fallbackDir, { recursive: true, force: true });
  }

  /** After a connection dropped: did QEMU exit (give it a moment to be reaped)? */
  private async exitedSoon(r: Running): Promise<boolean> {
    const exited = await Promise.race([r.process.exited.then(() => true), sleep(2000).then(() => false)]);
    return exited;
  }

  private async crashedWhile(doing: string): Promise<MachineCrashedError> {
    const r = this.running;
    if (r !== undefined) await Promise.race([r.process.exited, sleep(2000)]);
    return this.crashError(doing, r);
  }

  private crashError(doing: string, r: Running | undefined): MachineCrashedError {
    const status = r?.process.exitStatus;
    return new MachineCrashedError(this.name, doing, status?.code ?? null, status?.signal ?? null, this.console.tail(20));
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
