import { AsyncLocalStorage } from "node:async_hooks";

export type LogLevel = "debug" | "info" | "warning" | "error";
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warning", "error"];

export interface LogAttrs {
  machine?: string;
  [key: string]: string | undefined;
}

/** One `nested` block: a subtest, a command, a wait. Blocks of different machines may overlap in time. */
export interface LogFrame {
  readonly id: number;
  readonly message: string;
  readonly attrs: LogAttrs;
  readonly parent: LogFrame | undefined;
  readonly depth: number;
  readonly start: number;
}

/** A stretch of a machine's time that is not a `nested` block (its boot: start → shell), for the report's timeline. */
export interface TimedSpan {
  machine: string;
  label: string;
  kind: "boot";
  /** performance.now() values. */
  start: number;
  end: number;
}

export interface LogSink {
  line(level: LogLevel, message: string, attrs: LogAttrs, frame: LogFrame | undefined): void;
  serial(machine: string, line: string): void;
  open(frame: LogFrame): void;
  close(frame: LogFrame, seconds: number, error: unknown): void;
  /** Optional: a span of time to show on the report's timeline. */
  span?(span: TimedSpan): void;
  /** Makes everything written so far durable (the XML log rewrites its file). */
  flush(): void;
  /** Final flush; must be synchronous, it also runs from process.on("exit"). */
  end(): void;
}

/**
 * The one logger of a test run: it fans out to the terminal, the XML log and
 * (later) reports. Nesting follows the async call chain (AsyncLocalStorage), so
 * concurrent commands on two machines each log under their own block.
 */
export class Logger {
  private readonly context = new AsyncLocalStorage<LogFrame>();
  private nextId = 1;
  private ended = false;
  /** Whether serial console lines are echoed to the terminal (`serialStdoutOn/Off`). */
  printSerial = true;

  constructor(private readonly sinks: LogSink[]) {}

  addSink(sink: LogSink): void {
    this.sinks.push(sink);
  }

  log(message: string, attrs: LogAttrs = {}): void {
    this.emit("info", message, attrs);
  }

  debug(message: string, attrs: LogAttrs = {}): void {
    this.emit("debug", message, attrs);
  }

  warning(message: string, attrs: LogAttrs = {}): void {
    this.emit("warning", message, attrs);
  }

  error(message: string, attrs: LogAttrs = {}): void {
    this.emit("error", message, attrs);
  }

  serial(machine: string, line: string): void {
    for (const s of this.sinks) s.serial(machine, line);
  }

  /** Records a span of a machine's time (its boot) for the timeline. */
  span(span: TimedSpan): void {
    for (const s of this.sinks) s.span?.(span);
  }

  /** Runs `fn` as a timed block: a header now, `(finished: …, in N seconds)` when it settles. */
  async nested<T>(message: string, attrs: LogAttrs, fn: () => Promise<T>): Promise<T> {
    const parent = this.context.getStore();
    const frame: LogFrame = {
      id: this.nextId++,
      message,
      attrs,
      parent,
      depth: parent === undefined ? 0 : parent.depth + 1,
      start: performance.now(),
    };
    for (const s of this.sinks) s.open(frame);
    let failure: unknown;
    try {
      return await this.context.run(frame, fn);
    } catch (error) {
      failure = error ?? new Error("undefined was thrown");
      throw error;
    } finally {
      const seconds = (performance.now() - frame.start) / 1000;
      for (const s of this.sinks) s.close(frame, seconds, failure);
    }
  }

  /** The innermost `nested` block the caller runs in. */
  currentFrame(): LogFrame | undefined {
    return this.context.getStore();
  }

  flush(): void {
    for (const s of this.sinks) s.flush();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const s of this.sinks) s.end();
  }

  private emit(level: LogLevel, message: string, attrs: LogAttrs): void {
    const frame = this.context.getStore();
    for (const s of this.sinks) s.line(level, message, attrs, frame);
  }
}
