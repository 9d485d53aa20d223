import { readFileSync } from "node:fs";
import { abortReason } from "../async/abort.js";
import { FileWriter } from "../log/file-writer.js";

/** Console text kept in memory for `tail()`, crash reports and waits; the rest is in the console file. */
const MAX_MEMORY_CHARS = 1 << 20;
/** Console text buffered before it is appended to the console file. */
const FILE_BUFFER_CHARS = 64 << 10;
/**
 * A failed search is not repeated over old text: the next one starts this far
 * before the new lines, so a match may span up to this much console text and
 * a wait costs O(new text), not O(text since the wait began), during a flood.
 */
const LOOKBACK_CHARS = 64 << 10;

/**
 * The guest's serial console as lines. `waitForConsoleText` is event-driven:
 * it looks at the lines as they arrive, never polls.
 *
 * Memory is bounded: the last few MiB are kept in memory; with a file
 * (`reset(path)`, the machine's state directory), every line since the start
 * is appended to it too, and `text()` reads it back, so `getConsoleLog()`
 * still returns the whole console since the last start.
 */
export class ConsoleLog {
  private lines: string[] = [];
  /** Absolute number of lines[0] since the last reset. */
  private base = 0;
  private chars = 0;
  /** Absolute number of the first line `waitForConsoleText` has not consumed yet (nixpkgs' `last_lines` queue). */
  private cursor = 0;
  private readonly listeners = new Set<() => void>();
  private checkQueued = false;
  /** Every line since the last start, when reset() was given a path. */
  private file: FileWriter | undefined;

  push(line: string): void {
    this.lines.push(line);
    this.chars += line.length + 1;
    if (this.chars > MAX_MEMORY_CHARS) this.dropOldest();
    this.file?.write(`${line}\n`);
    // One check per batch of lines (QEMU's output arrives in chunks of many lines).
    if (this.listeners.size > 0 && !this.checkQueued) {
      this.checkQueued = true;
      queueMicrotask(() => {
        this.checkQueued = false;
        for (const l of [...this.listeners]) l();
      });
    }
  }

  /** nixpkgs resets the log on each start; `path` (optional) receives every line from now on. */
  reset(path?: string): void {
    this.file?.close();
    this.file = undefined;
    this.lines = [];
    this.base = 0;
    this.chars = 0;
    this.cursor = 0;
    if (path !== undefined) this.file = new FileWriter(path, FILE_BUFFER_CHARS);
  }

  /** The console since the last start (from the file when there is one). */
  text(): string {
    if (this.file !== undefined) {
      this.file.flush();
      const all = readFileSync(this.file.path, "utf8");
      return all.endsWith("\n") ? all.slice(0, -1) : all;
    }
    return this.lines.join("\n");
  }

  tail(count = 20): string {
    return this.lines.slice(-count).join("\n");
  }

  /**
   * Resolves when `regex` matches the text of the lines not yet consumed
   * (multi-line, as nixpkgs searches its accumulated buffer); the lines up to
   * the first line where it matches are consumed.
   */
  waitFor(regex: RegExp, signal: AbortSignal): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      /** Absolute number of the next line to add to `buffer`. */
      let next = Math.max(this.cursor, this.base);
      let buffer = "";
      /** Absolute line number of buffer's first line, and where each buffered line ends in it. */
      let first = next;
      let ends: number[] = [];
      /** Where the last failed search's lookback begins. */
      let searchFrom = 0;
      const search = (text: string, from: number): RegExpExecArray | null => {
        regex.lastIndex = 0;
        const m = regex.exec(from === 0 ? text : text.slice(from));
        if (m !== null) m.index += from;
        return m;
      };
      const check = (): boolean => {
        if (next < this.base) {
          // Lines were dropped from memory while we waited: go on from what is kept.
          buffer = "";
          ends = [];
          next = first = this.base;
          searchFrom = 0;
        }
        const batchStart = ends.length;
        for (; next < this.base + this.lines.length; next++) {
          buffer += `${this.lines[next - this.base]}\n`;
          ends.push(buffer.length);
        }
        if (ends.length === batchStart) return false;
        if (search(buffer, searchFrom) === null) {
          searchFrom = Math.max(0, buffer.length - LOOKBACK_CHARS);
          if (buffer.length > 2 * LOOKBACK_CHARS) {
            // Keep only the lookback window: the older text can no longer start a match.
            const cut = ends.findIndex((e) => e > searchFrom);
            const drop = cut <= 0 ? 0 : (ends[cut - 1] as number);
            buffer = buffer.slice(drop);
            ends = ends.slice(cut).map((e) => e - drop);
            first += cut;
            searchFrom -= drop;
          }
          return false;
        }
        // The earliest line of this batch at which the text matches (as if checked line by line).
        let lo = batchStart;
        let hi = ends.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (search(buffer.slice(0, ends[mid]), searchFrom) !== null) hi = mid;
          else lo = mid + 1;
        }
        const match = search(buffer.slice(0, ends[lo]), searchFrom) ?? search(buffer, searchFrom);
        this.cursor = first + lo + 1;
        done();
        resolve((match as RegExpExecArray)[0]);
        return true;
      };
      const onAbort = (): void => {
        done();
        reject(abortReason(signal));
      };
      const onLine = (): void => void check();
      const done = (): void => {
        this.listeners.delete(onLine);
        signal.removeEventListener("abort", onAbort);
      };
      if (check()) return;
      if (signal.aborted) return onAbort();
      this.listeners.add(onLine);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Drops the oldest half of what is in memory: amortised O(1) per line. */
  private dropOldest(): void {
    let dropChars = 0;
    let count = 0;
    while (count < this.lines.length && dropChars < this.chars / 2) dropChars += (this.lines[count++] as string).length + 1;
    this.lines = this.lines.slice(count);
    this.base += count;
    this.chars -= dropChars;
  }
}
