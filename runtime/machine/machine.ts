import type { Capability, CapabilityMethod } from "./backend.js";
import { Commands } from "./commands.js";
import { MachineCore, type MachineConfig } from "./core.js";
import { Network } from "./network.js";
import type { CommandOptions, CommandsAndOptions, ExecuteResult, PortOptions, WaitOptions } from "./options.js";
import { QemuBackend } from "./qemu.js";
import { Screen, type KeyOptions } from "./screen.js";
import { Systemd, type UnitOptions } from "./systemd.js";
import type { MachineBackend } from "./backend.js";

/**
 * A machine of the test (a QEMU VM or a systemd-nspawn container), with the
 * Python driver's methods in camelCase. Every method is async; options
 * (timeouts in seconds, an AbortSignal) go last. Commands to one machine run
 * one at a time; different machines run concurrently, so
 * `Promise.all([a.succeed(x), b.succeed(y)])` overlaps.
 *
 * The lifecycle and the command primitive are `MachineCore` (core.ts), over a
 * backend (qemu.ts, container.ts). The test-script features are written once
 * against it and composed here, one object each: commands and waits
 * (commands.ts), systemd (systemd.ts), network (network.ts), screen
 * (screen.ts). A method that needs what the backend lacks (a screen on a
 * container) fails with one error naming the method and the machine kind.
 */
export class Machine extends MachineCore {
  private readonly commands = new Commands(this);
  private readonly systemd = new Systemd(this);
  private readonly network = new Network(this);
  private readonly screen = new Screen(this);

  constructor(config: MachineConfig, backend: MachineBackend = new QemuBackend()) {
    super(config, backend);
  }

  /** Runs each command; throws `CommandFailedError` on the first non-zero exit. Returns the outputs, joined. */
  succeed(...args: CommandsAndOptions): Promise<string> {
    return this.commands.succeed(...args);
  }

  /** Runs each command; throws `CommandFailedError` if one exits with 0. Returns the outputs, joined. */
  fail(...args: CommandsAndOptions): Promise<string> {
    return this.commands.fail(...args);
  }

  /** Repeats `command` (backing off from 50 ms to 1 s) until it exits with 0; returns its output. Default timeout 900 s. */
  waitUntilSucceeds(command: string, options: WaitOptions = {}): Promise<string> {
    return this.commands.waitUntilSucceeds(command, options);
  }

  /** Repeats `command` until it exits non-zero; returns its output. Default timeout 900 s. */
  waitUntilFails(command: string, options: WaitOptions = {}): Promise<string> {
    return this.commands.waitUntilFails(command, options);
  }

  waitForFile(path: string, options: WaitOptions = {}): Promise<void> {
    return this.commands.waitForFile(path, options);
  }

  /** Waits until something listens on `port` (checked with `nc -z` inside the guest). */
  waitForOpenPort(port: number, options: PortOptions = {}): Promise<void> {
    return this.commands.waitForOpenPort(port, options);
  }

  waitForClosedPort(port: number, options: PortOptions = {}): Promise<void> {
    return this.commands.waitForClosedPort(port, options);
  }

  waitForOpenUnixSocket(path: string, options: WaitOptions & { isDatagram?: boolean } = {}): Promise<void> {
    return this.commands.waitForOpenUnixSocket(path, options);
  }

  /**
   * Waits until `pattern` matches the serial console output not yet consumed
   * by an earlier call (it may span lines). Event-driven; default timeout 900 s.
   */
  waitForConsoleText(pattern: string | RegExp, options: WaitOptions = {}): Promise<string> {
    return this.commands.waitForConsoleText(pattern, options);
  }

  /** Sleeps in the guest's time (`sleep N` in the guest), as nixpkgs does. */
  sleep(seconds: number): Promise<void> {
    return this.commands.sleep(seconds);
  }

  /** Presses a key or chord through QEMU's monitor: `ret`, `ctrl-alt-delete`, `ctrl+c`, `alt-f2`, `A`. */
  sendKey(key: string, options: { delay?: number } = {}): Promise<void> {
    return this.needs("keys", "sendKey", () => this.commands.sendKey(key, options));
  }

  /** Reboots the guest with ctrl-alt-delete; the next command waits for the new backdoor shell. */
  reboot(): Promise<void> {
    return this.needs("keys", "reboot", () => this.commands.reboot());
  }

  /**
   * Copies a host file or directory into the guest at `target`, through the
   * shared directory (mounted at /tmp/shared). Modes are kept; the owner is root.
   */
  copyFromHost(source: string, target: string, options: CommandOptions = {}): Promise<void> {
    return this.commands.copyFromHost(source, target, options);
  }

  /**
   * Copies a guest file or directory into the output directory (under
   * `targetDir`, relative to it), through the shared directory.
   */
  copyFromMachine(source: string, targetDir = "", options: CommandOptions = {}): Promise<string> {
    return this.commands.copyFromMachine(source, targetDir, options);
  }

  /** nixpkgs' older name of `copyFromMachine`. */
  copyFromVm(source: string, targetDir = "", options: CommandOptions = {}): Promise<string> {
    return this.commands.copyFromVm(source, targetDir, options);
  }

  /** @internal */
  mustSucceed(command: string, options: CommandOptions): Promise<ExecuteResult> {
    return this.commands.mustSucceed(command, options);
  }

  /** Runs `systemctl <args>` (for a user: as that user, against their manager); never throws for the exit code. */
  systemctl(args: string, options: UnitOptions & CommandOptions = {}): Promise<{ exitCode: number; output: string }> {
    return this.systemd.systemctl(args, options);
  }

  startJob(unit: string, options: UnitOptions = {}): Promise<{ exitCode: number; output: string }> {
    return this.systemd.startJob(unit, options);
  }

  stopJob(unit: string, options: UnitOptions = {}): Promise<{ exitCode: number; output: string }> {
    return this.systemd.stopJob(unit, options);
  }

  /** All properties of a unit (`systemctl show`). */
  getUnitInfo(unit: string, options: UnitOptions = {}): Promise<Record<string, string>> {
    return this.systemd.getUnitInfo(unit, options);
  }

  getUnitProperty(unit: string, property: string, options: UnitOptions = {}): Promise<string> {
    return this.systemd.getUnitProperty(unit, property, options);
  }

  /** Fails unless the unit's ActiveState is `state` (default `active`). */
  requireUnitState(unit: string, state = "active", options: UnitOptions = {}): Promise<void> {
    return this.systemd.requireUnitState(unit, state, options);
  }

  /**
   * Waits until the unit is active. Fails at once when it enters `failed`, or
   * is inactive with no job pending, with `systemctl status` and its last
   * journal lines in the error.
   */
  waitForUnit(unit: string, options: UnitOptions & WaitOptions = {}): Promise<void> {
    return this.systemd.waitForUnit(unit, options);
  }

  /**
   * nixpkgs' `switch_root`: leaves the initrd (a systemd initrd with
   * `testing.initrdBackdoor`) for stage 2 and carries on in stage 2's
   * backdoor shell.
   */
  switchRoot(options: WaitOptions = {}): Promise<void> {
    return this.systemd.switchRoot(options);
  }

  /** Waits for a job (unit) to be active; nixpkgs' alias of `waitForUnit`. */
  waitForJob(unit: string, options: UnitOptions & WaitOptions = {}): Promise<void> {
    return this.systemd.waitForJob(unit, options);
  }

  /**
   * Cuts the machine off its first vlan (QEMU `set_link … off` on the first
   * vlan NIC; eth0, the user-mode NIC, stays up), as nixpkgs does.
   */
  block(): Promise<void> {
    return this.needs("nic", "block", () => this.network.block());
  }

  unblock(): Promise<void> {
    return this.needs("nic", "unblock", () => this.network.unblock());
  }

  /** Forwards a host TCP port to a guest port over the user-mode NIC (`hostfwd_add`); defaults 8080 → 80, as nixpkgs. */
  forwardPort(options: { hostPort?: number; guestPort?: number } = {}): Promise<void> {
    return this.needs("monitor", "forwardPort", () => this.network.forwardPort(options));
  }

  /**
   * Saves a PNG of the VGA screen (QMP `screendump`). A name without an
   * extension gets `.png`; a relative name lands in the output directory.
   * Returns the file's path.
   */
  screenshot(name: string): Promise<string> {
    return this.needs("screen", "screenshot", () => this.screen.screenshot(name));
  }

  /** Types text key by key (a US keyboard); newlines press return. */
  sendChars(text: string, options: KeyOptions = {}): Promise<void> {
    return this.needs("keys", "sendChars", () => this.screen.sendChars(text, options));
  }

  /** The screen's text by OCR (tesseract) of one screenshot, without preprocessing. */
  getScreenText(): Promise<string> {
    return this.needs("screen", "getScreenText", () => this.screen.getScreenText());
  }

  /** OCR of the raw screenshot and of nixpkgs' two preprocessed variants (more robust, slower). */
  getScreenTextVariants(): Promise<string[]> {
    return this.needs("screen", "getScreenTextVariants", () => this.screen.getScreenTextVariants());
  }

  /** Waits until OCR of the screen finds `pattern` (any variant). Default timeout 900 s. */
  waitForText(pattern: string | RegExp, options: WaitOptions = {}): Promise<void> {
    return this.needs("screen", "waitForText", () => this.screen.waitForText(pattern, options));
  }

  /** Text on virtual console `tty` (as nixpkgs: `/dev/vcs<tty>` folded to the console's width). */
  getTtyText(tty: number | string): Promise<string> {
    return this.needs("screen", "getTtyText", () => this.screen.getTtyText(tty));
  }

  /** Waits until the text of virtual console `tty` matches `pattern`. */
  waitUntilTtyMatches(tty: number | string, pattern: string | RegExp, options: WaitOptions = {}): Promise<void> {
    return this.needs("screen", "waitUntilTtyMatches", () => this.screen.waitUntilTtyMatches(tty, pattern, options));
  }

  /** Logs the text of virtual console `tty` into the journal (nixpkgs' dump_tty_contents). */
  dumpTtyContents(tty: number | string): Promise<void> {
    return this.needs("screen", "dumpTtyContents", () => this.screen.dumpTtyContents(tty));
  }

  /** Waits for the X server (graphical target reached and its socket present). */
  waitForX(options: WaitOptions = {}): Promise<void> {
    return this.needs("screen", "waitForX", () => this.screen.waitForX(options));
  }

  /** The titles of the X11 windows (`xwininfo -root -tree`). */
  getWindowNames(): Promise<string[]> {
    return this.needs("screen", "getWindowNames", () => this.screen.getWindowNames());
  }

  /** Waits until a window title matches `pattern`. */
  waitForWindow(pattern: string | RegExp, options: WaitOptions = {}): Promise<void> {
    return this.needs("screen", "waitForWindow", () => this.screen.waitForWindow(pattern, options));
  }

  /** Runs `fn` if the backend has `capability`, else fails with the "not on this kind of machine" error at the caller's line. */
  private needs<T>(capability: Capability, method: CapabilityMethod, fn: () => Promise<T>): Promise<T> {
    return this.api(async () => {
      this.require(capability, method);
      return fn();
    });
  }
}

/** The test-facing API of a container machine: a `Machine` without what needs a screen, keys, QEMU's monitor or QMP. */
export type ContainerMachine = Omit<Machine, CapabilityMethod>;
