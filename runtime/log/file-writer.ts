import { closeSync, openSync, writeSync } from "node:fs";

/**
 * Appends text to a file in few, large, synchronous writes: a log line costs
 * an array push, and what was flushed is in the file even if the process is
 * killed right after. Used for the console files and the report, so that
 * none of them is ever one string in memory.
 */
export class FileWriter {
  private fd: number | undefined;
  private pending: string[] = [];
  private chars = 0;

  /** Opens (truncates) `path`; `flushAt` characters buffered make a write. */
  constructor(
    readonly path: string,
    private readonly flushAt: number,
  ) {
    this.fd = openSync(path, "w");
  }

  write(text: string): void {
    if (this.fd === undefined) return;
    this.pending.push(text);
    this.chars += text.length;
    if (this.chars >= this.flushAt) this.flush();
  }

  flush(): void {
    if (this.fd === undefined || this.pending.length === 0) return;
    const data = Buffer.from(this.pending.join(""));
    this.pending = [];
    this.chars = 0;
    let done = 0;
    while (done < data.length) done += writeSync(this.fd, data, done);
  }

  /** Flushes and closes; later writes are dropped. */
  close(): void {
    this.flush();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
