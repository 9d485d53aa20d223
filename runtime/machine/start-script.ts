// node:child_process, not execa: a start script runs in a process group of its own (detached) that we end as a
// group, and its stdout is a FIFO we hand over as a raw descriptor; execa's own cleanup would kill only the script.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, constants, openSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { killGroup, track } from "../host/reaper.js";

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
    const stdout = consolePipe(options.cwd);
    this.child = plain
      ? spawn(options.startScript.trim(), options.args, {
          cwd: options.cwd,
          env: options.env,
          detached: true,
          stdio: ["pipe", stdout?.writeFd ?? "pipe", "pipe"],
        })
      : spawn("/bin/sh", ["-c", `${options.startScript} "$@"`, "sh", ...options.args], {
          cwd: options.cwd,
          env: options.env,
          detached: true,
          stdio: ["pipe", stdout?.writeFd ?? "pipe", "pipe"],
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
    // Our copy of the write end goes: the pipe ends when QEMU (and whatever else holds it) has exited.
    if (stdout !== undefined) closeSync(stdout.writeFd);
    const consoleStream = stdout === undefined ? this.child.stdout : new Socket({ fd: stdout.readFd, readable: true, writable: false });
    const drained = new Promise<void>((resolve) => {
      if (consoleStream === null || consoleStream === this.child.stdout) return resolve();
      consoleStream.once("close", () => resolve());
      consoleStream.on("error", () => undefined);
    });
    const closed = new Promise<ExitStatus>((resolve) => {
      this.child.once("close", (code, signal) => void drained.then(() => resolve({ code, signal })));
    });
    this.exited = Promise.race([closed, spawnError]).then((status) => {
      this.status = status;
      untrack();
      return status;
    });
    this.child.stdin?.on("error", () => undefined);
    for (const stream of [consoleStream, this.child.stderr]) {
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

/**
 * QEMU's stdout (the serial console) as a real pipe (a FIFO opened at both
 * ends, then unlinked). Node gives a child a socket pair for "pipe", where
 * each of QEMU's tiny writes (a few bytes per line) stays a separate buffer
 * that costs the reader kernel time; a pipe packs them into pages, as for
 * the Python driver's `subprocess.PIPE`. Undefined when mkfifo is missing:
 * then the socket pair is used.
 */
function consolePipe(dir: string): { readFd: number; writeFd: number } | undefined {
  const path = join(dir, `.console-pipe-${process.pid}-${Math.random().toString(36).slice(2)}`);
  if (spawnSync("mkfifo", ["-m", "600", path]).status !== 0) return undefined;
  try {
    // Reader first, non-blocking (no writer yet); then the writer opens at once.
    const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const writeFd = openSync(path, constants.O_WRONLY);
    return { readFd, writeFd };
  } finally {
    rmSync(path, { force: true });
  }
}

const MAX_LINE_CHARS = 1 << 20;
/** After a chunk, the console rests this long, so a burst is read in a few large chunks. */
const BATCH_MS = 20;

/**
 * Splits QEMU's output into lines. QEMU writes the serial console a few
 * bytes at a time, so during a flood every line would cost the driver
 * several wake-ups and reads. After each chunk the stream is paused for a
 * few milliseconds (with a read buffer of zero, the pipe is not read at all
 * meanwhile): the bytes gather in the pipe and come in one read. A lone line
 * arrives at once; the pipe's 64 KiB are far more than a pause fills.
 */
function splitLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  const decoder = new StringDecoder("utf8");
  let partial = "";
  // While paused, Node reads until its buffer reaches the high-water mark: 0 makes it stop after one chunk.
  const state = (stream as { _readableState?: { highWaterMark: number } })._readableState;
  if (state !== undefined) state.highWaterMark = 0;
  let resting = false;
  stream.on("data", (chunk: Buffer) => {
    const lines = (partial + decoder.write(chunk)).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) onLine(line.includes("\r") ? line.replace(/\r/g, "") : line);
    // A guest writing without newlines must not grow memory without bound: a long run becomes a line.
    if (partial.length > MAX_LINE_CHARS) {
      onLine(partial.replace(/\r/g, ""));
      partial = "";
    }
    if (!resting) {
      resting = true;
      stream.pause();
      setTimeout(() => {
        resting = false;
        stream.resume();
      }, BATCH_MS);
    }
  });
  stream.on("end", () => {
    const rest = partial + decoder.end();
    if (rest !== "") onLine(rest.replace(/\r/g, ""));
  });
}
