import { DATA_PORT, type Poll } from "./framing.js";
import { DataChannel } from "./data-channel.js";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { abortable, sleep } from "../async/abort.js";
import type { Boot, Capability, CommandAnswer, LaunchContext, MachineBackend } from "./backend.js";
import { Monitor } from "./monitor.js";
import { QmpClient } from "./qmp.js";
import { BackdoorShell } from "./shell.js";
import { Listener, socketPaths, type SocketPaths } from "./sockets.js";
import { StartScriptProcess, type ExitStatus } from "./start-script.js";

/**
 * QEMU's flags after the start script's own (nixpkgs' QemuStartCommand):
 * QMP, the HMP monitor and the backdoor shell's virtconsole on sockets we
 * listen on, the serial console on stdio. Beyond nixpkgs: a virtserialport
 * for large answers (DATA_PORT; a guest that does not look for it is not
 * affected).
 */
export function qemuArgs(sockets: SocketPaths, allowReboot: boolean, graphical: boolean): string[] {
  return [
    "-qmp",
    `unix:${sockets.qmp},server=on,wait=off`,
    "-monitor",
    `unix:${sockets.monitor}`,
    "-chardev",
    `socket,id=shell,path=${sockets.shell}`,
    "-device",
    "virtio-serial",
    "-device",
    "virtconsole,chardev=shell",
    "-chardev",
    `socket,id=ntt-data,path=${sockets.data}`,
    "-device",
    `virtserialport,chardev=ntt-data,name=${DATA_PORT}`,
    "-device",
    "virtio-rng-pci",
    "-serial",
    "stdio",
    ...(allowReboot ? [] : ["-no-reboot"]),
    ...(graphical ? [] : ["-nographic"]),
  ];
}

/** The environment nixpkgs gives a `run-<name>-vm` script. */
export function qemuEnv(context: LaunchContext): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...context.env,
    TMPDIR: context.stateDir,
    SHARED_DIR: context.sharedDir,
    USE_TMPDIR: "1",
    NIX_EFI_VARS: join(context.stateDir, `${context.name}-efi-vars.fd`),
  };
}

/** VMs: a start script running QEMU, the backdoor shell on a virtconsole, the monitor and QMP. */
export class QemuBackend implements MachineBackend {
  readonly kind = "vm";
  readonly capabilities: ReadonlySet<Capability> = new Set<Capability>(["screen", "keys", "monitor", "qmp", "nic"]);

  /** The launch sequence: listen, run the script, accept the two sockets, connect QMP. */
  async launch(context: LaunchContext, crashed: (boot: Boot, doing: string) => Promise<Error>): Promise<QemuBoot> {
    const sockets = socketPaths(context.stateDir);
    const monitorListener = await Listener.listen(sockets.monitor);
    const shellListener = await Listener.listen(sockets.shell);
    const dataListener = await Listener.listen(sockets.data);
    rmSync(sockets.qmp, { force: true });
    const graphical = Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY);
    const qemu = new StartScriptProcess({
      startScript: context.startScript,
      args: qemuArgs(sockets, context.allowReboot, graphical),
      cwd: context.stateDir,
      env: qemuEnv(context),
      onLine: context.onLine,
    });
    const boot = new QemuBoot(qemu, sockets, [monitorListener, shellListener, dataListener]);
    // QEMU connects every chardev as it starts, long before the guest's shell
    // is up; a start command that leaves the port out only loses the speed.
    const testHooks = context.testHooks ?? {};
    const data = testHooks.noDataPort === true || testHooks.noFlowControl === true ? undefined : dataListener.accepted();
    void data?.then((socket) => boot.attachData(new DataChannel(socket, testHooks)));
    try {
      const [monitorSocket, shellSocket] = await Promise.race([
        Promise.all([monitorListener.accepted(), shellListener.accepted()]),
        qemu.exited.then(async () => {
          throw await crashed(boot, "starting (QEMU exited before it connected its sockets)");
        }),
        abortable(new Promise<never>(() => undefined), context.signal),
      ]);
      boot.monitor = new Monitor(monitorSocket);
      boot.shell = new BackdoorShell(shellSocket, { onJunk: context.onJunk, test: testHooks });
      if (boot.data !== undefined) boot.shell.attachData(boot.data);
      boot.qmp = await QmpClient.connect(sockets.qmp, context.signal);
      return boot;
    } catch (error) {
      // If QEMU died, that is the story (with its output), not the socket that closed.
      const died = !qemu.running || (await exitedSoon(qemu.exited));
      await qemu.kill("SIGKILL");
      boot.close();
      if (died && !context.signal.aborted) throw await crashed(boot, "starting");
      throw error;
    }
  }
}

/** One QEMU run: its process, the backdoor shell, the monitor and QMP. */
export class QemuBoot implements Boot {
  shell: BackdoorShell | undefined;
  monitor: Monitor | undefined;
  qmp: QmpClient | undefined;
  data: DataChannel | undefined;
  readonly readiness = "guest root shell";

  constructor(
    readonly process: StartScriptProcess,
    private readonly sockets: SocketPaths,
    private readonly listeners: Listener[],
  ) {}

  get pid(): number {
    return this.process.pid;
  }

  get running(): boolean {
    return this.process.running;
  }

  get exited(): Promise<ExitStatus> {
    return this.process.exited;
  }

  get exitStatus(): ExitStatus | undefined {
    return this.process.exitStatus;
  }

  get connected(): boolean {
    return this.shell?.connected === true;
  }

  get silentFor(): number {
    return this.shell?.silentFor ?? 0;
  }

  async waitReady(signal: AbortSignal): Promise<void> {
    const shell = this.shell;
    if (shell === undefined) throw new Error("the backdoor shell is not connected");
    await abortable(shell.waitForMarker(), signal);
  }

  run(command: string, seconds: number, signal: AbortSignal, poll?: Poll): Promise<CommandAnswer> {
    const shell = this.shell;
    if (shell === undefined) return Promise.reject(new Error("the backdoor shell is not connected"));
    return shell.run(command, seconds, signal, poll);
  }

  async powerOff(): Promise<void> {
    this.shell?.writeRaw("poweroff\n");
  }

  attachData(data: DataChannel): void {
    this.data = data;
    this.shell?.attachData(data);
  }

  expectNewShell(): void {
    this.shell?.expectNewShell();
  }

  fail(error: Error): void {
    this.shell?.fail(error);
  }

  async kill(): Promise<void> {
    await this.process.kill("SIGKILL");
  }

  close(): void {
    this.shell?.destroy();
    this.monitor?.close();
    this.qmp?.close();
    this.data?.destroy();
    for (const l of this.listeners) l.close();
    if (this.sockets.fallbackDir !== undefined) rmSync(this.sockets.fallbackDir, { recursive: true, force: true });
  }
}

/** After a connection dropped: did the process exit (give it a moment to be reaped)? */
export async function exitedSoon(exited: Promise<unknown>, ms = 2000): Promise<boolean> {
  return Promise.race([exited.then(() => true), sleep(ms).then(() => false)]);
}
