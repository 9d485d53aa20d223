import type { Socket } from "node:net";

const RS = 0x1e;
const US = 0x1f;
const MAX_HEADER = 64;

/**
 * The driver's end of the data port: a virtserialport QEMU connects to a
 * socket of ours, which the guest writes large answers to (see framing.ts,
 * `__ntt_data`). Unlike the virtconsole, QEMU throttles the guest when this
 * socket is not read, so a paused reader loses nothing and the guest simply
 * waits: no window, no base64.
 *
 * Each answer is `\x1eNTD <id> <length>\x1f` and then exactly <length> bytes.
 * The guest writes it before its note on the console, but the two sockets are
 * read independently, so an answer may be complete here before or after its
 * note is parsed: the latest answer is kept until it is taken. Bytes outside
 * an answer (the rest of one the guest could not finish) are skipped.
 */
export class DataChannel {
  private state: "seek" | "header" | "body" = "seek";
  private header = "";
  private current: { id: number; bytes: Buffer; received: number } | undefined;
  private complete: { id: number; bytes: Buffer } | undefined;
  private waiter: { id: number; resolve(bytes: Buffer): void } | undefined;
  private lastData = Date.now();
  private closedError: Error | undefined;
  private closeWaiters: Array<(error: Error) => void> = [];

  constructor(
    private readonly socket: Socket,
    hooks: { readDelayMs?: number } = {},
  ) {
    socket.on("data", (chunk: Buffer) => {
      this.lastData = Date.now();
      if (hooks.readDelayMs !== undefined && hooks.readDelayMs > 0) {
        socket.pause();
        setTimeout(() => socket.resume(), hooks.readDelayMs);
      }
      this.feed(chunk);
    });
    socket.on("error", () => undefined); // "close" follows
    socket.on("close", () => {
      this.closedError = new Error("the data port's connection closed");
      for (const w of this.closeWaiters.splice(0)) w(this.closedError);
    });
  }

  /** Milliseconds since the guest last wrote to the port. */
  get silentFor(): number {
    return Date.now() - this.lastData;
  }

  /** How much of answer `id` has arrived (for an error message when it stalls). */
  progress(id: number): number {
    if (this.complete?.id === id) return this.complete.bytes.length;
    return this.current?.id === id ? this.current.received : 0;
  }

  /**
   * Answer `id`, once all of it arrived. `length` is what the console's note
   * said; an answer of another length is not it.
   */
  take(id: number, length: number): Promise<Buffer> {
    if (this.complete?.id === id && this.complete.bytes.length === length) {
      const { bytes } = this.complete;
      this.complete = undefined;
      return Promise.resolve(bytes);
    }
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    return new Promise<Buffer>((resolve, reject) => {
      this.closeWaiters.push(reject);
      this.waiter = {
        id,
        resolve: (bytes) => {
          this.closeWaiters = this.closeWaiters.filter((w) => w !== reject);
          resolve(bytes);
        },
      };
    });
  }

  /**
   * Forget every answer up to now: command `id` answered on the console, so
   * whatever of its own arrived here was a try the guest gave up.
   */
  discard(): void {
    this.complete = undefined;
    this.current = undefined;
    this.waiter = undefined;
    this.state = "seek";
    this.header = "";
  }

  destroy(): void {
    this.socket.destroy();
  }

  private feed(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.state === "seek") {
        const start = chunk.indexOf(RS, at);
        if (start === -1) return;
        this.state = "header";
        this.header = "";
        at = start + 1;
      } else if (this.state === "header") {
        const stop = chunk.indexOf(US, at);
        const end = stop === -1 ? chunk.length : stop;
        this.header += chunk.toString("latin1", at, end);
        at = end;
        if (this.header.length > MAX_HEADER || this.header.includes("\x1e")) {
          this.state = "seek";
          continue;
        }
        if (stop === -1) return;
        at = stop + 1;
        const m = /^NTD (\d+) (\d+)$/.exec(this.header);
        if (m === null) {
          this.state = "seek";
          continue;
        }
        // Allocated once at its full size: a large answer is held once, never as a list of chunks to join.
        this.current = { id: Number(m[1]), bytes: Buffer.allocUnsafe(Number(m[2])), received: 0 };
        this.state = "body";
        if (this.current.bytes.length === 0) this.finish();
      } else {
        const c = this.current as { id: number; bytes: Buffer; received: number };
        const n = Math.min(chunk.length - at, c.bytes.length - c.received);
        chunk.copy(c.bytes, c.received, at, at + n);
        c.received += n;
        at += n;
        if (c.received === c.bytes.length) this.finish();
      }
    }
  }

  private finish(): void {
    const c = this.current as { id: number; bytes: Buffer };
    this.current = undefined;
    this.state = "seek";
    const w = this.waiter;
    if (w !== undefined && w.id === c.id) {
      this.waiter = undefined;
      w.resolve(c.bytes);
    } else {
      this.complete = { id: c.id, bytes: c.bytes };
    }
  }
}
