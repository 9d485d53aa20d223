import { AsyncLocalStorage } from "node:async_hooks";
import { setMaxListeners } from "node:events";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { VmConfiguration } from "../../lib/config.js";
import { scriptBinding } from "../../lib/names.js";
import type { ScriptApiName } from "../../lib/script-symbols.js";
import { t } from "./assertions.js";
import { scriptLog } from "./test-api.js";
import { abortable } from "../async/abort.js";
import { attachLocation, captureCallSite } from "../async/callsite.js";
import { stepWithPause, type FailureDecision } from "../async/pause.js";
import { MachineError, TestAbortedError, TimeoutError, UsageError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { Machine, machineBackend, type ShellTestHooks } from "../machine/index.js";
import { PollingCondition, type PollingConditionOptions } from "./polling-condition.js";
import { retry as retryImpl, type RetryOptions } from "./polling.js";
import { VLan } from "../host/vlan.js";

export interface DriverOptions {
  vms: VmConfiguration[];
  /** systemd-nspawn containers (`run-<name>-nspawn` start scripts). */
  containers?: VmConfiguration[];
  vlans: number[];
  /** Seconds for the whole test (nixpkgs' `globalTimeout`, default 3600). */
  globalTimeout: number;
  outDir: string;
  logger: Logger;
  /** Reuse `vm-state-<name>` directories instead of starting from empty disks. */
  keepVmState?: boolean;
  /** Parent of the state directories; default `$XDG_RUNTIME_DIR` or the temp directory, as nixpkgs. */
  stateRoot?: string;
  /** Environment for the start scripts on top of the driver's own (vlan sockets). */
  env?: Record<string, string>;
  /** Test hooks for the machines' backdoor shells (the project's own tests). */
  testHooks?: ShellTestHooks;
}

export interface SubtestResult {
  name: string;
  /** Names of the enclosing subtests, outermost first. */
  parents: string[];
  /** Seconds from the start of the run. */
  start: number;
  seconds: number;
  error: unknown;
  /** The log block of this subtest, to pick its lines from a RecordSink. */
  frame: number | undefined;
}

/**
 * One test run: its machines, the global timeout and cleanup. Everything a
 * test script sees (`startAll`, `subtest`, each machine …) comes from here.
 */
export class Driver {
  readonly machines: Readonly<Record<string, Machine>>;
  /** The virtual networks by number, once `setUp()` ran. */
  readonly vlans: Record<number, VLan> = {};
  readonly logger: Logger;
  readonly outDir: string;
  readonly globalTimeout: number;
  readonly subtests: SubtestResult[] = [];
  private readonly controller = new AbortController();
  private readonly conditions = new Set<PollingCondition>();
  private readonly stateRoot: string;
  private readonly ownsStateRoot: boolean;
  private timer: NodeJS.Timeout | undefined;
  private readonly subtestStack = new AsyncLocalStorage<string[]>();
  private interruptController = new AbortController();
  private timerEnd = 0;
  /** Set by --pause-on-failure: decides what a failed call does (see MachineConfig.onFailure). @internal */
  failureHook: ((error: unknown, machine: string | undefined) => Promise<FailureDecision>) | undefined;
  /** Errors a person has already decided about (see failureHook). @internal */
  readonly offered = new WeakSet<object>();
  private readonly began = performance.now();
  private readonly vlanNumbers: number[];
  /** Containers join the vlans through a tap on each switch (see VLan). */
  private readonly hasContainers: boolean;
  /** The start scripts' extra environment; `setUp()` adds the vlan sockets. */
  private readonly env: Record<string, string>;

  constructor(options: DriverOptions) {
    this.logger = options.logger;
    // Every concurrent wait listens on this signal; dozens are normal, not a leak.
    setMaxListeners(0, this.controller.signal);
    setMaxListeners(0, this.interruptController.signal);
    this.outDir = options.outDir;
    this.globalTimeout = options.globalTimeout;
    const base = options.stateRoot ?? process.env.XDG_RUNTIME_DIR ?? process.env.TMPDIR ?? "/tmp";
    mkdirSync(base, { recursive: true });
    // nixpkgs keeps state in fixed `vm-state-<name>` directories so --keep-vm-state can find them;
    // otherwise a private directory per run lets two tests run side by side.
    this.ownsStateRoot = !options.keepVmState && options.stateRoot === undefined;
    this.stateRoot = this.ownsStateRoot ? mkdtempSync(join(base, "nixos-test-")) : base;
    this.vlanNumbers = [...new Set(options.vlans)].sort((a, b) => a - b);
    this.env = { ...options.env };
    const sharedDir = join(this.stateRoot, "shared-xchg");
    mkdirSync(sharedDir, { recursive: true, mode: 0o700 });
    this.sharedDir = sharedDir;
    this.keepVmState = options.keepVmState ?? false;
    this.testHooks = options.testHooks;
    const machines: Record<string, Machine> = {};
    const all = [...options.vms.map((m) => ({ ...m, container: false })), ...(options.containers ?? []).map((m) => ({ ...m, container: true }))];
    this.hasContainers = all.some((m) => m.container);
    for (const vm of all.sort((a, b) => a.name.localeCompare(b.name))) {
      if (vm.name in machines) throw new MachineError(vm.name, "two machines have this name; names must be unique across VMs and containers");
      machines[vm.name] = this.newMachine(vm.name, vm.startScript, this.keepVmState, vm.container ? "container" : "vm");
    }
    this.machines = machines;
    if (!options.keepVmState) this.logger.log("Machine state will be reset. To keep it, pass --keep-vm-state");
  }

  private readonly sharedDir: string;
  private readonly keepVmState: boolean;
  private readonly testHooks: ShellTestHooks | undefined;

  private newMachine(name: string, startScript: string, keepVmState: boolean, kind: "vm" | "container" = "vm"): Machine {
    return new Machine(
      {
        name,
        startScript,
        stateRoot: this.stateRoot,
        sharedDir: this.sharedDir,
        outDir: this.outDir,
        keepVmState,
        logger: this.logger,
        signal: this.controller.signal,
        env: this.env,
        beforeCommand: () => this.checkPollingConditions(),
        interruptSignal: () => this.interruptController.signal,
        onFailure: (error, machine) => this.failureHook?.(error, machine) ?? Promise.resolve("throw"),
        ...(this.testHooks === undefined ? {} : { testHooks: this.testHooks }),
      },
      machineBackend(kind),
    );
  }

  /**
   * nixpkgs' `create_machine`: a further VM from a start command (a script
   * or a shell command line; the driver appends QEMU's sockets and options
   * as for every VM). Its name defaults to what `run-<name>-vm` in the
   * command says, else "machine"; it must not be taken. Not started: call
   * `start()`. Cleaned up with the test like every machine.
   */
  createMachine(startCommand: string, options: { name?: string; keepMachineState?: boolean } = {}): Machine {
    if (typeof startCommand !== "string" || startCommand.trim() === "") throw new UsageError("createMachine: the start command must be a non-empty string");
    const name = options.name ?? /run-(.+)-vm$/.exec(startCommand.trim())?.[1] ?? "machine";
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name))
      throw new UsageError(`createMachine: machine name ${JSON.stringify(name)}: use letters, digits, '_', '.', '-'`);
    if (this.machines[name] !== undefined) {
      throw new UsageError(`createMachine: a machine named ${JSON.stringify(name)} exists already; pass { name: "<another name>" }`);
    }
    const machine = this.newMachine(name, startCommand, options.keepMachineState ?? false);
    (this.machines as Record<string, Machine>)[name] = machine;
    return machine;
  }

  /** Starts the vlans' switches (before any machine, whose start script needs their sockets, or their bridges). @internal */
  async setUp(): Promise<void> {
    for (const nr of this.vlanNumbers) {
      const vlan = await VLan.start(nr, this.stateRoot, this.logger, { tap: this.hasContainers });
      this.vlans[nr] = vlan;
      this.env[`QEMU_VDE_SOCKET_${nr}`] = vlan.socket;
    }
  }

  /** Aborted when the test must stop: global timeout, SIGINT/SIGTERM, `abort()`. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Starts the global timeout's clock (nixpkgs starts it when the test script starts). */
  armGlobalTimeout(seconds = this.globalTimeout): void {
    this.logger.log(`Test will time out and terminate in ${Math.round(seconds)} seconds`);
    clearTimeout(this.timer);
    this.timerEnd = Date.now() + seconds * 1000;
    this.timer = setTimeout(() => {
      this.logger.error(`global timeout of ${this.globalTimeout} s reached; test terminating...`);
      this.abort(new TimeoutError("the test (global timeout)", this.globalTimeout));
    }, seconds * 1000);
    this.timer.unref();
  }

  /** Stops the global timeout's clock while a person debugs (pause on failure); returns a function that restarts it. */
  pauseGlobalTimeout(): () => void {
    if (this.timer === undefined) return () => undefined;
    clearTimeout(this.timer);
    const left = Math.max(1, (this.timerEnd - Date.now()) / 1000);
    return () => this.armGlobalTimeout(left);
  }

  /** Cancels the commands and waits running now (the interactive driver's Ctrl-C), not the test. @internal */
  interrupt(): void {
    const old = this.interruptController;
    this.interruptController = new AbortController();
    setMaxListeners(0, this.interruptController.signal);
    old.abort(new TestAbortedError("interrupted (Ctrl-C)"));
  }

  abort(reason: Error): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  /** Starts every machine in parallel; returns once all QEMUs run (not when they have booted). */
  async startAll(): Promise<void> {
    await this.logger.nested("start all machines", {}, async () => {
      const results = await Promise.allSettled(Object.values(this.machines).map((m) => m.start()));
      const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
      if (failed.length === 1) throw failed[0];
      if (failed.length > 1) {
        throw new AggregateError(failed, `${failed.length} machines failed to start: ${failed.map((e) => (e as Error).message.split("\n")[0]).join("; ")}`);
      }
    });
  }

  /** Waits until every machine has shut down. */
  async joinAll(): Promise<void> {
    await this.logger.nested("wait for all machines to finish", {}, async () => {
      await Promise.all(Object.values(this.machines).map((m) => m.waitForShutdown({ timeout: null })));
    });
  }

  /** A named, timed block of the test; its failure is logged with its name, then rethrown. */
  async subtest<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const site = captureCallSite();
    const start = performance.now();
    const parents = this.subtestStack.getStore() ?? [];
    let failure: unknown;
    let frame: number | undefined;
    try {
      return await stepWithPause(
        () =>
          this.logger.nested(`subtest: ${name}`, {}, () => {
            frame = this.logger.currentFrame()?.id;
            return this.subtestStack.run([...parents, name], fn);
          }),
        // A failure the pause already offered (a failed command inside) is not offered twice.
        (error) =>
          this.failureHook === undefined || this.signal.aborted || this.offered.has(error as object) ? undefined : this.failureHook(error, undefined),
      );
    } catch (error) {
      failure = error ?? new Error("undefined was thrown");
      attachLocation(error, site);
      this.logger.error(`Test "${name}" failed with error: "${(error as Error)?.message ?? String(error)}"`);
      throw error;
    } finally {
      this.subtests.push({
        name,
        parents,
        start: (start - this.began) / 1000,
        seconds: (performance.now() - start) / 1000,
        error: failure,
        frame,
      });
    }
  }

  /** nixpkgs' `retry`: repeats `fn(lastTry)` until it returns true (default timeout 900 s). */
  async retry(fn: (lastTry: boolean) => boolean | Promise<boolean>, options: Omit<RetryOptions, "machine"> = {}): Promise<void> {
    const site = captureCallSite();
    try {
      await retryImpl((lastTry) => fn(lastTry), { ...options, signal: options.signal ? AbortSignal.any([options.signal, this.signal]) : this.signal });
    } catch (error) {
      attachLocation(error, site);
      throw error;
    }
  }

  pollingCondition(condition: () => unknown, options: PollingConditionOptions = {}): PollingCondition {
    return new PollingCondition(condition, this.conditions, options);
  }

  /**
   * The names a test script sees, as nixpkgs binds them (each machine under
   * its script identifier, `machine` for a single VM), the others from
   * lib/script-symbols.ts: `api` must bind every function listed there.
   * @internal
   */
  testSymbols(): Record<string, unknown> {
    const api: { [K in ScriptApiName]: unknown } = {
      startAll: () => this.startAll(),
      joinAll: () => this.joinAll(),
      subtest: <T>(name: string, fn: () => Promise<T>) => this.subtest(name, fn),
      retry: (fn: (lastTry: boolean) => boolean | Promise<boolean>, options?: RetryOptions) => this.retry(fn, options),
      pollingCondition: (condition: () => unknown, options?: PollingConditionOptions) => this.pollingCondition(condition, options),
      log: scriptLog(() => this.logger),
      t,
      serialStdoutOn: () => void (this.logger.printSerial = true),
      serialStdoutOff: () => void (this.logger.printSerial = false),
      createMachine: (startCommand: string, options?: { name?: string; keepMachineState?: boolean }) => this.createMachine(startCommand, options),
    };
    const list = Object.values(this.machines);
    const symbols: Record<string, unknown> = { driver: this, machines: scriptMachines(this.machines), ...api };
    for (const m of list) symbols[scriptBinding(m.name)] = m;
    symbols.vlans = this.vlans;
    for (const v of Object.values(this.vlans)) symbols[`vlan${v.nr}`] = v;
    if (list.length === 1 && !("machine" in this.machines)) symbols.machine = list[0];
    return symbols;
  }

  /** Races `work` against the global timeout and interruption. */
  async guard<T>(work: Promise<T>): Promise<T> {
    return abortable(work, this.signal);
  }

  /** Flushes disks of running guests, as nixpkgs does after a successful script. */
  async syncAll(): Promise<void> {
    await Promise.all(
      Object.values(this.machines)
        .filter((m) => m.isUp())
        .map((m) => m.execute("sync", { timeout: 60 }).catch(() => undefined)),
    );
  }

  /** Ends every machine and removes what the run created; never throws. @internal */
  async cleanup(): Promise<void> {
    clearTimeout(this.timer);
    this.abort(new MachineError("driver", "the test has ended"));
    await Promise.all(Object.values(this.machines).map((m) => m.release().catch(() => undefined)));
    await Promise.all(Object.values(this.vlans).map((v) => v.stop().catch(() => undefined)));
    if (this.ownsStateRoot) rmSync(this.stateRoot, { recursive: true, force: true });
  }

  private async checkPollingConditions(): Promise<void> {
    for (const c of [...this.conditions]) await c.maybeCheck();
  }
}

/**
 * nixpkgs' `machines` is a list; here it is an array too (`for (const m of
 * machines)`, `machines.map(…)`, `Object.values(machines)`), whose machines
 * are also properties by name (`machines.server`), not enumerable, so that
 * the array holds each machine once. A name an array already has
 * (`length`, `map`, …) is only in the list.
 */
export function scriptMachines<M extends { name: string }>(byName: Readonly<Record<string, M>>): readonly M[] & Readonly<Record<string, M>> {
  const list = Object.values(byName);
  for (const m of list) {
    if (!(m.name in list)) Object.defineProperty(list, m.name, { value: m, enumerable: false });
  }
  return Object.freeze(list) as unknown as readonly M[] & Readonly<Record<string, M>>;
}
