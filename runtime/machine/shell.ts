import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { abortReason } from "../async/abort.js";
import type { DataChannel } from "./data-channel.js";
import {
  CANCEL,
  DATA_PORT,
  MARKER,
  PREAMBLE,
  RecordParser,
  flowWindow,
  frameCommand,
  resendLine,
  type DamagedRecord,
  type DataNote,
  type Poll,
  type ShellRecord,
} from "./framing.js";

/** How long a command waits for a cancelled one to end in the guest (its watchdog kills it at once). */
const DRAIN_MS = 30_000;
/** Once an answer has begun, the rest follows within moments; silence this long means bytes were lost. */
const STALL_MS = 10_000;

export interface ShellResult {
  exitCode: number;
  timedOut: boolean;
  output: Buffer;
}

/**
 * Hooks for the project's own tests, never for users: they make the command
 * channel's failure modes reproducible. One object from the CLI (environment
 * variables) down to the shell.
 */
export interface ShellTestHooks {
  /** Throttles reading the console and the data port: with flow control a slow reader must still get everything. */
  readDelayMs?: number;
  /**
   * The guest sends large answers on the console without waiting for the
   * host (and not on the data port), to prove that a loss becomes an error.
   */
  noFlowControl?: boolean;
  /** Large answers go over the console (flow-controlled), as for a QEMU without the data port. */
  noDataPort?: boolean;
}

export interface ShellHooks {
  /** Data the guest wrote outside any answer (before the marker, or by a guest process). */
  onJunk(text: string): void;
  test?: ShellTestHooks;
}

/** Resolves when `done` does, or rejects when `signal` aborts first. */
function abortableDone(done: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return done;
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    void done.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}

interface Pending {
  id: number;
  command: string;
  resolve(result: ShellResult): void;
  reject(error: Error): void;
  stallTimer?: NodeJS.Timeout;
  /** Watches the data port while the answer comes that way. */
  dataTimer?: NodeJS.Timeout;
  /** The guest was asked to send the answer again, with flow control. */
  resent?: boolean;
  /** Settles with the command (answer, error, cancellation or a restarted shell). */
  done: Promise<void>;
  finish(): void;
}

/** Thrown (as the cause) when the shell restarted under a command; see ShellRestartedError. */
export class ShellRestarted extends Error {
  constructor(readonly command: string) {
    super(`the backdoor shell started again while \`${command}\` ran`);
  }
}

/**
 * The send buffer of QEMU's end of the console socket: the kernel's default
 * (QEMU does not set its own). 212992 bytes, Linux' default, if unreadable.
 */
function socketBufferBytes(): number {
  try {
    const value = Number(readFileSync("/proc/sys/net/core/wmem_default", "utf8").trim());
    return Number.isFinite(value) && value > 0 ? value : 212992;
  } catch {
    return 212992;
  }
}

export class ShellDamagedError extends Error {
  constructor(readonly damage: DamagedRecord) {
    super(damage.why);
  }
}

/**
 * The driver's end of the backdoor root shell. The virtconsole drops what the
 * host does not read in time, so the socket is drained all the time, and
 * large outputs come in blocks the host asks for one by one (flow control):
 * a stalled event loop can delay an answer but never shorten it.
 */
export class BackdoorShell {
  private readonly parser: RecordParser;
  /** Ids start at random so that a marker left in the guest by an earlier boot cannot match a new command. */
  private nextId = 1 + Math.floor(Math.random() * 1e9);
  private pending: Pending | undefined;
  private markerSeen = false;
  private markerWaiters: Array<{ resolve(): void; reject(error: Error): void }> = [];
  private markerText = "";
  private closedError: Error | undefined;
  private lastData = Date.now();
  /** A cancelled command whose answer is still to come. */
  private draining: { id: number; done: Promise<void>; finished(): void } | undefined;
  /** Blocks the guest may send ahead of the host's go-aheads; 0: no flow control. */
  private readonly window: number;
  /** Where large answers arrive, when QEMU has the data port. */
  private data: DataChannel | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly hooks: ShellHooks,
  ) {
    this.window = hooks.test?.noFlowControl === true ? 0 : flowWindow(socketBufferBytes());
    this.parser = new RecordParser({
      record: (r) => this.onRecord(r),
      dataNote: (n) => this.onDataNote(n),
      damaged: (d) => this.onDamaged(d),
      junk: (bytes) => this.onJunk(bytes),
      // The guest waits for a go-ahead after each block from the window's
      // last on; one for each of the last `window` blocks would stay unread.
      blockDone: (index, blocks) => {
        if (this.window > 0 && index < blocks - this.window) this.socket.write("\n");
      },
    });
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => undefined); // "close" follows and carries the news
    socket.on("close", () => this.onClose());
  }

  /** Milliseconds since the guest last wrote anything. */
  get silentFor(): number {
    return Date.now() - this.lastData;
  }

  get connected(): boolean {
    return this.markerSeen;
  }

  /** Call when the guest reboots: its next shell announces itself again. */
  expectNewShell(): void {
    this.markerSeen = false;
    this.markerText = "";
  }

  /** Resolves once the guest printed `Spawning backdoor root shell...`; then defines our helper. */
  waitForMarker(signal?: AbortSignal): Promise<void> {
    if (this.markerSeen) return Promise.resolve();
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (error: Error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      const onAbort = (): void => {
        this.markerWaiters = this.markerWaiters.filter((w) => w !== waiter);
        reject(abortReason(signal as AbortSignal));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.markerWaiters.push(waiter);
    });
  }

  /**
   * Runs one command; the caller serialises calls. `timeout` is the
   * guest-side limit in seconds (0: none); with `poll`, the guest repeats the
   * command until its exit status is the wanted one.
   */
  async run(command: string, timeout: number, signal?: AbortSignal, poll?: Poll): Promise<ShellResult> {
    // After a cancellation the guest is still busy ending the old command; its
    // watchdog reads the console line-wise, so nothing may be written until it is done.
    if (this.draining !== undefined) await Promise.race([this.draining.done, new Promise((r) => setTimeout(r, DRAIN_MS))]);
    this.draining = undefined;
    // A command sent without waiting for it (execute's checkOutput: false):
    // the shell reads the next one only after it, or it restarted meanwhile.
    while (this.pending !== undefined) {
      if (signal?.aborted) throw abortReason(signal);
      await abortableDone(this.pending.done, signal);
    }
    if (!this.markerSeen) await this.waitForMarker(signal);
    if (this.closedError) throw this.closedError;
    if (signal?.aborted) throw abortReason(signal);
    const id = this.nextId++;
    const line = frameCommand(id, command, timeout, this.window, poll);
    return new Promise<ShellResult>((resolve, reject) => {
      const onAbort = (): void => {
        // Tell the command's watchdog to kill it; its answer, when it comes, is dropped by id.
        if (this.pending?.id === id) {
          this.socket.write(CANCEL);
          let finished!: () => void;
          this.draining = { id, done: new Promise<void>((r) => (finished = r)), finished: () => finished() };
        }
        this.settle(id);
        reject(abortReason(signal as AbortSignal));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      let settled!: () => void;
      const done = new Promise<void>((r) => (settled = r));
      this.pending = {
        id,
        command,
        done,
        finish: () => settled(),
        resolve: (r) => {
          signal?.removeEventListener("abort", onAbort);
          settled();
          resolve(r);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          settled();
          reject(e);
        },
      };
      this.socket.write(line);
    });
  }

  /**
   * Large answers may come through `data` from now on: the guest looks for
   * the port when it sets the shell up (at the marker, or now if idle).
   */
  attachData(data: DataChannel): void {
    this.data = data;
    if (this.markerSeen && this.pending === undefined && this.draining === undefined) this.socket.write(this.dataPortLine());
  }

  private dataPortLine(): string {
    return this.data === undefined ? "" : `__ntt_dport ${DATA_PORT}\n`;
  }

  /** Writes text to the shell as is (nixpkgs' `shutdown` sends a bare `poweroff`). */
  writeRaw(text: string): void {
    this.socket.write(text);
  }

  /** Fails everything waiting on this shell with `error` (the machine knows why the socket went away). */
  fail(error: Error): void {
    this.closedError ??= error;
    const pending = this.pending;
    this.settle(pending?.id);
    pending?.reject(error);
    for (const w of this.markerWaiters.splice(0)) w.reject(error);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.lastData = Date.now();
    const delay = this.hooks.test?.readDelayMs;
    if (delay !== undefined && delay > 0) {
      this.socket.pause();
      setTimeout(() => this.socket.resume(), delay);
    }
    if (!this.markerSeen) {
      this.scanForMarker(chunk);
      return;
    }
    this.parser.feed(chunk);
    this.armStallTimer();
  }

  private scanForMarker(chunk: Buffer): void {
    // Keep only a tail: firmware or init may write plenty before the marker.
    const text = this.markerText + chunk.toString("latin1");
    const at = text.indexOf(MARKER);
    if (at === -1) {
      this.hooks.onJunk(chunk.toString("utf8"));
      this.markerText = text.slice(-MARKER.length);
      return;
    }
    this.markerSeen = true;
    this.markerText = "";
    // A guest that rebooted may have left half an answer on the port.
    this.data?.discard();
    this.socket.write(PREAMBLE + this.dataPortLine());
    for (const w of this.markerWaiters.splice(0)) w.resolve();
    // "nothing may follow" the marker but its newline; anything else is data.
    const rest = Buffer.from(text.slice(at + MARKER.length).replace(/^\r?\n/, ""), "latin1");
    if (rest.length > 0) this.parser.feed(rest);
  }

  private armStallTimer(): void {
    const p = this.pending;
    if (p === undefined) return;
    clearTimeout(p.stallTimer);
    if (!this.parser.midRecord) return;
    p.stallTimer = setTimeout(() => this.parser.abandon(`no more data for ${STALL_MS / 1000} s`), STALL_MS);
  }

  private onRecord(record: ShellRecord): void {
    // An answer on the console: anything on the data port up to now is a try the guest gave up.
    this.data?.discard();
    if (this.draining?.id === record.id) this.draining.finished();
    const p = this.pending;
    if (p === undefined || p.id !== record.id) return; // a late answer to an abandoned command
    this.settle(p.id);
    p.resolve({ exitCode: record.exitCode, timedOut: record.timedOut, output: record.output });
  }

  /** The answer's status came on the console, its bytes come (or came) through the data port. */
  private onDataNote(note: DataNote): void {
    const data = this.data;
    const draining = this.draining?.id === note.id ? this.draining : undefined;
    const p = this.pending?.id === note.id ? this.pending : undefined;
    if (data === undefined) {
      // The guest only uses a port the driver named to it; a note without one is junk.
      this.onJunk(Buffer.from(`NTD ${note.id} ${note.exitCode} ${note.length}`));
      return;
    }
    if (p !== undefined) {
      clearTimeout(p.stallTimer);
      // A virtserialport is throttled, never lossy: silence means the guest or QEMU stopped.
      p.dataTimer = setInterval(() => {
        if (data.silentFor < STALL_MS) return;
        this.settle(p.id);
        p.reject(
          new ShellDamagedError({
            id: note.id,
            expected: note.length,
            received: data.progress(note.id),
            why: `no more data on the data port for ${STALL_MS / 1000} s`,
          }),
        );
      }, 1000);
    }
    data.take(note.id, note.length).then(
      (output) => {
        draining?.finished();
        if (p === undefined || this.pending !== p) return;
        this.settle(p.id);
        p.resolve({ exitCode: note.exitCode, timedOut: note.timedOut, output });
      },
      (error: Error) => {
        draining?.finished();
        if (p === undefined || this.pending !== p) return;
        this.settle(p.id);
        p.reject(new ShellDamagedError({ id: note.id, expected: note.length, received: data.progress(note.id), why: error.message }));
      },
    );
  }

  private onDamaged(damage: DamagedRecord): void {
    const p = this.pending;
    // id 0: the header itself was cut, so the damage can only be the running command's.
    if (p === undefined || (damage.id !== 0 && p.id !== damage.id)) return;
    // A large answer streams without flow control; when the host lost part of
    // it, the guest sends it again in blocks the host asks for (once).
    if (damage.streamed === true && this.window > 0 && !p.resent && damage.id === p.id) {
      p.resent = true;
      clearTimeout(p.stallTimer);
      this.socket.write(resendLine(p.id, this.window));
      return;
    }
    this.settle(p.id);
    p.reject(new ShellDamagedError(damage));
  }

  private onJunk(bytes: Buffer): void {
    const w = this.rawWaiter;
    if (w !== undefined) {
      const text = bytes.toString("latin1");
      w.chunks.push(text);
      // Only the tail is matched: a raw answer may be many megabytes.
      w.tail = (w.tail + text).slice(-256);
      if (w.until.test(w.tail)) {
        this.rawWaiter = undefined;
        w.resolve(w.chunks.join(""));
      }
      return;
    }
    this.hooks.onJunk(bytes.toString("utf8"));
    // Outside any answer only the guest itself writes: a new shell's marker means a restart.
    const text = this.junkTail + bytes.toString("latin1");
    if (text.includes(MARKER)) {
      this.junkTail = "";
      this.onShellRestarted();
      return;
    }
    this.junkTail = text.slice(-MARKER.length);
  }

  /** How often the guest's shell announced itself again on this connection. */
  restarts = 0;
  private restartWaiters: Array<() => void> = [];

  /** Resolves once `restarts` exceeds `since` (the shell restarted and is set up again). */
  waitForRestart(since: number, signal?: AbortSignal): Promise<void> {
    if (this.restarts > since) return Promise.resolve();
    return abortableDone(new Promise<void>((r) => this.restartWaiters.push(r)), signal);
  }

  /** The end of the latest junk, to find a marker split across chunks. */
  private junkTail = "";

  private rawWaiter: { until: RegExp; chunks: string[]; tail: string; resolve(text: string): void } | undefined;

  /**
   * Benchmarks only: writes `text` as is and resolves with the guest's raw
   * answer once its last 256 characters match `until`, bypassing the
   * protocol (to compare framings).
   */
  rawExchange(text: string, until: RegExp): Promise<string> {
    return new Promise<string>((resolve) => {
      this.rawWaiter = { until, chunks: [], tail: "", resolve };
      this.socket.write(text);
    });
  }

  private settle(id: number | undefined): void {
    if (this.pending !== undefined && this.pending.id === id) {
      clearTimeout(this.pending.stallTimer);
      clearInterval(this.pending.dataTimer);
      this.pending.finish();
      this.pending = undefined;
    }
  }

  /**
   * The marker again while connected: the guest's backdoor shell started anew
   * (switch_root, `systemctl restart backdoor`, kexec). The old shell's
   * command can never answer: fail it at once, forget any half-read answer,
   * and define our helper in the new shell.
   */
  private onShellRestarted(): void {
    this.restarts++;
    for (const w of this.restartWaiters.splice(0)) w();
    this.parser.abandon("the shell restarted");
    this.draining?.finished();
    this.draining = undefined;
    const p = this.pending;
    this.settle(p?.id);
    p?.reject(new ShellRestarted(p.command));
    this.data?.discard();
    this.socket.write(PREAMBLE + this.dataPortLine());
  }

  private onClose(): void {
    this.parser.abandon("the connection closed");
    this.fail(this.closedError ?? new Error("the backdoor shell's connection closed"));
  }
}
