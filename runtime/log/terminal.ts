import type { LogAttrs, LogFrame, LogLevel, LogSink } from "./logger.js";
import { LOG_LEVELS } from "./logger.js";
import { clean } from "./xml.js";

const ESC = "\x1b[";
const style = {
  dim: (t: string) => `${ESC}2m${t}${ESC}22m`,
  bold: (t: string) => `${ESC}1m${t}${ESC}22m`,
  green: (t: string) => `${ESC}32m${t}${ESC}39m`,
  red: (t: string) => `${ESC}31m${t}${ESC}39m`,
  yellow: (t: string) => `${ESC}33m${t}${ESC}39m`,
};

export interface TerminalOptions {
  level?: LogLevel;
  /** Defaults to whether the stream is a TTY (and NO_COLOR is unset). */
  color?: boolean;
  isSerialOn(): boolean;
}

/**
 * Human-readable progress on stderr, like the Python driver's: `machine: msg`,
 * nested headers and `(finished: …, in N seconds)`, serial lines as
 * `machine # line` (dimmed), errors as `!!! …`. Indentation shows nesting.
 */
export class TerminalSink implements LogSink {
  private readonly color: boolean;
  private readonly minLevel: number;
  private buffered: string[] = [];
  /** After the end (process exit is near), lines are written at once. */
  private ended = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly options: TerminalOptions,
  ) {
    this.color = options.color ?? (out.isTTY === true && process.env.NO_COLOR === undefined);
    this.minLevel = LOG_LEVELS.indexOf(options.level ?? "info");
  }

  line(level: LogLevel, message: string, attrs: LogAttrs, frame: LogFrame | undefined): void {
    if (LOG_LEVELS.indexOf(level) < this.minLevel) return;
    const text = prefix(attrs) + message;
    const painted = level === "error" ? this.paint(style.red, `!!! ${text}`) : level === "warning" ? this.paint(style.yellow, text) : text;
    this.write(painted, depthOf(frame));
  }

  serial(machine: string, line: string): void {
    if (!this.options.isSerialOn() || this.minLevel > LOG_LEVELS.indexOf("info")) return;
    // The guest's own escape sequences (screen clears, colours) would garble the driver's output.
    this.write(this.paint(style.dim, `${machine} # ${clean(line)}`), 0);
  }

  open(frame: LogFrame): void {
    if (this.minLevel > LOG_LEVELS.indexOf("info")) return;
    this.write(this.paint(style.green, prefix(frame.attrs) + frame.message), frame.depth);
  }

  close(frame: LogFrame, seconds: number, error: unknown): void {
    if (this.minLevel > LOG_LEVELS.indexOf("info")) return;
    const verb = error === undefined ? "finished" : "failed";
    const text = `${prefix(frame.attrs)}(${verb}: ${frame.message}, in ${seconds.toFixed(2)} seconds)`;
    this.write(error === undefined ? text : this.paint(style.red, text), frame.depth);
  }

  /** Writes what is buffered. */
  flush(): void {
    if (this.buffered.length === 0) return;
    const text = this.buffered.join("");
    this.buffered = [];
    this.out.write(text);
  }

  end(): void {
    this.ended = true;
    this.flush();
  }

  private paint(fn: (t: string) => string, text: string): string {
    return this.color ? fn(text) : text;
  }

  /**
   * Lines are gathered and written once per turn of the event loop: stderr on
   * a pipe is a blocking write per call in Node, and a chatty guest sends
   * thousands of lines per turn.
   */
  private write(text: string, depth: number): void {
    const indent = "  ".repeat(depth);
    this.buffered.push(`${indent}${depth === 0 ? text : text.replace(/\n/g, `\n${indent}`)}\n`);
    if (this.ended) this.flush();
    else if (this.buffered.length === 1) setImmediate(() => this.flush());
    else if (this.buffered.length >= 4096) this.flush();
  }
}

function prefix(attrs: LogAttrs): string {
  return attrs.machine === undefined ? "" : `${attrs.machine}: `;
}

function depthOf(frame: LogFrame | undefined): number {
  return frame === undefined ? 0 : frame.depth + 1;
}
