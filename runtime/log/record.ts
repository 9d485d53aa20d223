import type { LogAttrs, LogFrame, LogLevel, LogSink } from "./logger.js";
import { clean } from "./xml.js";

export interface RecordedLine {
  /** Seconds since the run began. */
  at: number;
  level: LogLevel;
  machine: string | undefined;
  text: string;
  depth: number;
  /** Id of the innermost open block, for per-subtest logs. */
  frame: number | undefined;
}

/**
 * Keeps the run's log in memory, plain (no colour, no escapes), for the
 * reports written at the end: JUnit's system-out and the HTML report.
 */
export class RecordSink implements LogSink {
  readonly lines: RecordedLine[] = [];
  readonly serialLines = new Map<string, RecordedLine[]>();
  private readonly began = performance.now();
  /** Frame ids and their ancestors, to tell which lines belong to a block. */
  private readonly parents = new Map<number, number | undefined>();

  line(level: LogLevel, message: string, attrs: LogAttrs, frame: LogFrame | undefined): void {
    this.push(level, attrs.machine, message, frame === undefined ? 0 : frame.depth + 1, frame?.id);
  }

  serial(machine: string, line: string): void {
    const list = this.serialLines.get(machine) ?? [];
    list.push({ at: this.now(), level: "info", machine, text: clean(line), depth: 0, frame: undefined });
    this.serialLines.set(machine, list);
  }

  open(frame: LogFrame): void {
    this.parents.set(frame.id, frame.parent?.id);
    this.push("info", frame.attrs.machine, frame.message, frame.depth, frame.id);
  }

  close(frame: LogFrame, seconds: number, error: unknown): void {
    const verb = error === undefined ? "finished" : "failed";
    this.push(error === undefined ? "info" : "error", frame.attrs.machine, `(${verb}: ${frame.message}, in ${seconds.toFixed(2)} seconds)`, frame.depth, frame.id);
  }

  flush(): void {}

  end(): void {}

  /** The log as text, optionally only what happened inside block `frame` (and its children). */
  text(frame?: number): string {
    return this.lines
      .filter((l) => frame === undefined || this.within(l.frame, frame))
      .map((l) => `${"  ".repeat(l.depth)}${l.machine === undefined ? "" : `${l.machine}: `}${l.text}`)
      .join("\n");
  }

  private within(id: number | undefined, ancestor: number): boolean {
    for (let f = id; f !== undefined; f = this.parents.get(f)) if (f === ancestor) return true;
    return false;
  }

  private push(level: LogLevel, machine: string | undefined, message: string, depth: number, frame: number | undefined): void {
    this.lines.push({ at: this.now(), level, machine, text: clean(message), depth, frame });
  }

  private now(): number {
    return (performance.now() - this.began) / 1000;
  }
}
