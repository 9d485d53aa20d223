import { spawn, type ChildProcess } from "node:child_process";
import { StringDecoder } from "node:string_decoder";
import { killGroup, track } from "../reaper.js";

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartScriptOptions {
  /** A path, or (as nixpkgs allows) a shell command line the flags are appended to. */
  startScript: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Each line it prints (for QEMU, stdout is the guest's serial console and stderr QEMU's own messages). */
  onLine(line: string): void;
}

/**
 * One start script (`run-<name>-vm`, `run-<name>-nspawn`) and the QEMU or
 * systemd-nspawn it runs. The script gets a process group of its own: a
 * script may fork instead of exec'ing (Debian's /bin/sh does), and killing
 * the group is the only way to be sure QEMU or nspawn dies too.
 */
export class StartScriptProcess {
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  private status: ExitStatus | undefined;
  private readonly child: ChildProcess;

  constructor(options: StartScriptOptions) {
    const plain = !/\s/.test(options.startScript.trim());
    this.child = plain
      ? spawn(options.startScript.trim(), options.args, {
          cwd: options.cwd,
          env: options.env,
          detached: true,
          stdio: ["pipe", "pipe", "pipe"],
        })
      : spawn("/bin/sh", ["-c", `${options.startScript} "$@"`, "sh", ...options.args], {
          cwd: options.cwd,
          env: options.env,
          detached: true,
          stdio: ["pipe", "pipe", "pipe"],
        });
    this.pid = this.child.pid ?? -1;
    const untrack = track(this.pid);
    const spawnError = new Promise<ExitStatus>((resolve) => {
      this.child.once("error", (error: NodeJS.ErrnoException) => {
        options.onLine(`cannot run ${options.startScript}: ${error.message}`);
        resolve({ code: error.errno ?? 127, signal: null });
      });
    });
    // "exit" comes when the script ends; "close" once its output is drained too,
    // which is what a crash report needs (the serial tail). A forked QEMU
    // would hold the pipes open, so the group is ended on "exit".
    this.child.once("exit", () => this.killGroup("SIGKILL"));
    const closed = new Promise<ExitStatus>((resolve) => {
      this.child.once("close", (code, signal) => resolve({ code, signal }));
    });
    this.exited = Promise.race([closed, spawnError]).then((status) => {
      this.status = status;
      untrack();
      return status;
    });
    this.child.stdin?.on("error", () => undefined);
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream) splitLines(stream, options.onLine);
    }
  }

  get running(): boolean {
    return this.status === undefined;
  }

  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  /** Writes to QEMU's stdin, which is the guest's serial console (`-serial stdio`). */
  writeConsole(text: string): void {
    this.child.stdin?.write(text);
  }

  /** Ends the whole group and waits for the script to be reaped. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<ExitStatus> {
    this.killGroup(signal);
    return this.exited;
  }

  private killGroup(signal: NodeJS.Signals): void {
    killGroup(this.pid, signal);
  }
}

function splitLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  const decoder = new StringDecoder("utf8");
  let partial = "";
  stream.on("data", (chunk: Buffer) => {
    const lines = (partial + decoder.write(chunk)).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) onLine(line.replace(/\r/g, ""));
  });
  stream.on("end", () => {
    const rest = partial + decoder.end();
    if (rest !== "") onLine(rest.replace(/\r/g, ""));
  });
}
