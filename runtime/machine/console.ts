import { onAbort } from "../abort.js";

/** Lines kept for `getConsoleLog` and crash reports; the XML log keeps everything. */
const MAX_LINES = 100_000;

/**
 * The guest's serial console as lines. `waitForConsoleText` is event-driven:
 * it looks at every line as it arrives, never polls.
 */
export class ConsoleLog {
  private lines: string[] = [];
  /** Index of the first line `waitForConsoleText` has not consumed yet (nixpkgs' `last_lines` queue). */
  private cursor = 0;
  private dropped = 0;
  private readonly listeners = new Set<() => void>();

  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > MAX_LINES) {
      const cut = this.lines.length - MAX_LINES;
      this.lines.splice(0, cut);
      this.dropped += cut;
      this.cursor = Math.max(0, this.cursor - cut);
    }
    for (const l of this.listeners) l();
  }

  /** nixpkgs resets the log on each start. */
  reset(): void {
    this.lines = [];
    this.cursor = 0;
    this.dropped = 0;
  }

  text(): string {
    return this.lines.join("\n");
  }

  tail(count = 20): string {
    return this.lines.slice(-count).join("\n");
  }

  /**
   * Resolves when `regex` matches the text of the lines not yet consumed
   * (multi-line, as nixpkgs searches its accumulated buffer); the lines up to
   * the match are consumed.
   */
  waitFor(regex: RegExp, signal: AbortSignal): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      let searched = this.cursor;
      let buffer = "";
      const check = (): boolean => {
        for (; searched < this.lines.length; searched++) {
          buffer += `${this.lines[searched]}\n`;
          const match = regex.exec(buffer);
          if (match !== null) {
            this.cursor = searched + 1;
            done();
            resolve(match[0]);
            return true;
          }
        }
        return false;
      };
      const onLine = (): void => void check();
      let stop = (): void => undefined;
      const done = (): void => {
        this.listeners.delete(onLine);
        stop();
      };
      if (check()) return;
      this.listeners.add(onLine);
      stop = onAbort(signal, (reason) => {
        done();
        reject(reason);
      });
    });
  }
}
