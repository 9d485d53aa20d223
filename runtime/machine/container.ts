// node:child_process, not execa: each command runs in a process group of its own, ended as a group on a
// timeout or a cancellation (the command's whole tree inside the container), which execa does not do.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { abortReason, onAbort } from "../async/abort.js";
import { MachineError } from "../errors.js";
import { killGroup, track } from "../host/reaper.js";
import type { Boot, Capability, CommandAnswer, LaunchContext, MachineBackend } from "./backend.js";
import { LISTENING_FUNCTION } from "./framing.js";
import { exitedSoon } from "./qemu.js";
import { StartScriptProcess, type ExitStatus } from "./start-script.js";

/** What nixpkgs' nspawn start script prints once, before systemd-nspawn runs. */
const PID_LINE = /^systemd-nspawn's PID is (\d+)\s*$/;
/**
 * Ready when the container's PID 1 says so: "Startup finished in", maybe
 * after a kernel timestamp (journald forwarding with printk time on) and
 * "systemd[1]: ", but not a user manager's (systemd[28]: Startup finished).
 * "Welcome to NixOS" counts as nixpkgs' does; Debian's "Welcome to Debian"
 * comes before any unit started and does not.
 */
const READY_LINE = /^(?:\[[ \d.]+\] )?(?:systemd\[1\]: )?(?:Startup finished in |Welcome to NixOS)/;
/**
 * nixpkgs' command prelude for containers: the profile's PATH and
 * environment, errors and pipelines strict (needs bash as /bin/sh, as NixOS has);
 * first the helpers commands may call on every backend (waitForOpenPort's `__ntt_listening`).
 */
const PRELUDE = `${LISTENING_FUNCTION.join("\n")}\nset -eo pipefail; source /etc/profile; set -u; `;
/** How long `kill` waits for the start script to tear down its netns, veths and cgroup before it kills the script too. */
const TEARDOWN_MS = 15_000;
/** A command's exit code when the guest-side timeout killed it, as `timeout(1)` and the VM backdoor answer. */
const TIMEOUT_EXIT = 124;

/**
 * Containers: nixpkgs' `run-<name>-nspawn` start script runs systemd-nspawn
 * (`--boot --private-network`); commands enter the container's namespaces
 * with nsenter. The script owns what it creates (netns, veths, cgroup) and
 * removes it when nspawn ends, so the container is always ended by killing
 * its init, never by SIGKILLing the script.
 */
export class ContainerBackend implements MachineBackend {
  readonly kind = "container";
  readonly capabilities: ReadonlySet<Capability> = new Set<Capability>();

  async launch(context: LaunchContext, crashed: (boot: Boot, doing: string) => Promise<Error>): Promise<ContainerBoot> {
    let boot: ContainerBoot | undefined = undefined;
    const early: string[] = [];
    const script = new StartScriptProcess({
      startScript: context.startScript,
      args: [],
      cwd: context.stateDir,
      env: {
        ...process.env,
        ...context.env,
        RUN_NSPAWN_ROOT_DIR: context.stateDir,
        RUN_NSPAWN_SHARED_DIR: context.sharedDir,
      },
      onLine: (line) => {
        context.onLine(line);
        if (boot === undefined) early.push(line);
        else boot.line(line);
      },
    });
    boot = new ContainerBoot(context.name, script, context.onLine);
    for (const line of early) boot.line(line);
    try {
      await boot.started(context.signal);
      return boot;
    } catch (error) {
      const died = !script.running || (await exitedSoon(script.exited));
      await boot.kill();
      if (died && !context.signal.aborted) throw await crashed(boot, "starting (the start script ended before systemd-nspawn ran)");
      throw error;
    }
  }
}

/** One run of a container: its start script, systemd-nspawn's PID, the container's init. */
export class ContainerBoot implements Boot {
  readonly readiness = "the container's systemd (Startup finished)";
  private nspawnPid: number | undefined;
  private leaderPid: number | undefined;
  private ready = false;
  private lastLine = Date.now();
  private readonly waiters = new Set<{ resolve(): void; reject(error: Error): void; pidOnly: boolean }>();
  private readonly running_ = new Set<number>();
  private failure: Error | undefined;

  constructor(
    private readonly name: string,
    private readonly script: StartScriptProcess,
    private readonly onStderr: (line: string) => void,
  ) {
    void script.exited.then(() => this.settle(new MachineError(name, "the container ended")));
  }

  get pid(): number {
    return this.nspawnPid ?? this.script.pid;
  }

  get running(): boolean {
    return this.script.running;
  }

  get exited(): Promise<ExitStatus> {
    return this.script.exited;
  }

  get exitStatus(): ExitStatus | undefined {
    return this.script.exitStatus;
  }

  get connected(): boolean {
    return this.ready && this.script.running;
  }

  get silentFor(): number {
    return Date.now() - this.lastLine;
  }

  /** Each line of the script's output (nspawn's console: boot messages, the journal). */
  line(line: string): void {
    this.lastLine = Date.now();
    if (this.nspawnPid === undefined) {
      const m = PID_LINE.exec(line);
      if (m !== null) {
        this.nspawnPid = Number(m[1]);
        this.wake(true);
      }
      return;
    }
    if (!this.ready && READY_LINE.test(line)) {
      this.ready = true;
      this.wake(false);
    }
  }

  /** Resolves once the script said which PID systemd-nspawn has. */
  started(signal: AbortSignal): Promise<void> {
    return this.waitFor(true, signal);
  }

  waitReady(signal: AbortSignal): Promise<void> {
    return this.waitFor(false, signal);
  }

  run(command: string, seconds: number, signal: AbortSignal): Promise<CommandAnswer> {
    if (signal.aborted) return Promise.reject(abortReason(signal));
    const leader = this.leader();
    return new Promise<CommandAnswer>((resolve, reject) => {
      // Its own process group: on a timeout or a cancel the group is killed,
      // which is the command's whole tree inside the container (nsenter's
      // child keeps nsenter's group, and so do its descendants).
      const child = spawn("nsenter", ["-t", String(leader), "-a", "/bin/sh", "-c", PRELUDE + command], {
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: "/usr/bin:/bin:/usr/sbin:/sbin", HOME: "/root", TERM: "dumb", LANG: "C.UTF-8" },
      });
      const pid = child.pid ?? -1;
      const untrack = track(pid);
      this.running_.add(pid);
      const chunks: Buffer[] = [];
      child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
      let stderr = "";
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (text: string) => {
        const lines = (stderr + text).split("\n");
        stderr = lines.pop() ?? "";
        for (const l of lines) this.onStderr(l);
      });
      let how: "timeout" | "cancel" | undefined;
      const timer = seconds > 0 ? setTimeout(() => stop("timeout"), seconds * 1000) : undefined;
      const stopListening = onAbort(signal, () => stop("cancel"));
      function stop(why: "timeout" | "cancel"): void {
        how ??= why;
        killGroup(pid, "SIGKILL");
      }
      child.once("error", (error) => {
        finish();
        reject(new MachineError(this.name, `cannot run nsenter (${error.message}); install util-linux`));
      });
      child.once("close", (code, sig) => {
        finish();
        if (stderr !== "") this.onStderr(stderr);
        const output = Buffer.concat(chunks);
        if (how === "cancel") return reject(abortReason(signal));
        if (how === "timeout") return resolve({ exitCode: TIMEOUT_EXIT, timedOut: true, output });
        if (sig === null && code !== null) return resolve({ exitCode: code, timedOut: false, output });
        // Killed from outside: the container going down takes its processes with it.
        void exitedSoon(this.script.exited).then((gone) => {
          if (gone || this.failure !== undefined) reject(this.failure ?? new MachineError(this.name, "the container ended during the command"));
          else resolve({ exitCode: 128 + signalNumber(sig), timedOut: false, output });
        });
      });
      const finish = (): void => {
        clearTimeout(timer);
        stopListening();
        this.running_.delete(pid);
        untrack();
      };
    });
  }

  /** `systemctl poweroff` inside; nspawn exits once the container's init has halted. */
  async powerOff(): Promise<void> {
    await this.run("systemctl poweroff --no-block", 60, new AbortController().signal).catch(() => undefined);
  }

  expectNewShell(): void {
    this.ready = false;
  }

  fail(error: Error): void {
    this.settle(error);
    for (const pid of this.running_) killGroup(pid, "SIGKILL");
  }

  /**
   * A power cut: SIGKILL to the container's init ends every process in it,
   * nspawn exits, and the start script removes what it created. The script
   * is killed only if it does not end by itself.
   */
  async kill(): Promise<void> {
    if (!this.script.running) return;
    const leader = this.leaderPid ?? this.findLeader();
    if (leader !== undefined) {
      try {
        process.kill(leader, "SIGKILL");
      } catch {
        // already gone
      }
    } else if (this.nspawnPid !== undefined) {
      try {
        process.kill(this.nspawnPid, "SIGTERM");
      } catch {
        // already gone
      }
    } else {
      try {
        process.kill(this.script.pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
    if (await exitedSoon(this.script.exited, TEARDOWN_MS)) return;
    try {
      process.kill(this.script.pid, "SIGTERM");
    } catch {
      // already gone
    }
    if (await exitedSoon(this.script.exited, TEARDOWN_MS)) return;
    await this.script.kill("SIGKILL");
  }

  close(): void {
    for (const pid of this.running_) killGroup(pid, "SIGKILL");
  }

  /** The container's init: the single child of systemd-nspawn. */
  private leader(): number {
    const pid = this.leaderPid ?? this.findLeader();
    if (pid === undefined) throw new MachineError(this.name, "cannot find the container's init (the child of systemd-nspawn)");
    return pid;
  }

  private findLeader(): number | undefined {
    if (this.nspawnPid === undefined) return undefined;
    try {
      const children = readFileSync(`/proc/${this.nspawnPid}/task/${this.nspawnPid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
      if (children.length !== 1) return undefined;
      this.leaderPid = Number(children[0]);
      return this.leaderPid;
    } catch {
      return undefined;
    }
  }

  private waitFor(pidOnly: boolean, signal: AbortSignal): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (pidOnly ? this.nspawnPid !== undefined : this.ready) return Promise.resolve();
    if (signal.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        pidOnly,
        resolve: () => {
          stop();
          resolve();
        },
        reject: (error: Error) => {
          stop();
          reject(error);
        },
      };
      this.waiters.add(waiter);
      const stop = onAbort(signal, (reason) => {
        this.waiters.delete(waiter);
        reject(reason);
      });
    });
  }

  private wake(pidOnly: boolean): void {
    for (const w of [...this.waiters]) {
      if (w.pidOnly === pidOnly) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  private settle(error: Error): void {
    this.failure ??= error;
    for (const w of [...this.waiters]) {
      this.waiters.delete(w);
      w.reject(this.failure);
    }
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1, SIGSEGV: 11, SIGABRT: 6, SIGPIPE: 13 };
  return signal === null ? 0 : (numbers[signal] ?? 0);
}
