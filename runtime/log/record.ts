import { join } from "node:path";
import { FileWriter } from "./file-writer.js";
import type { LogAttrs, LogFrame, LogLevel, LogSink, TimedSpan } from "./logger.js";
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

/** One bar on the report's timeline: a machine's boot, or a command or wait (a `nested` block of that machine). */
export interface Span {
  machine: string;
  label: string;
  kind: "boot" | "command";
  /** Seconds since the run began. */
  start: number;
  seconds: number;
  failed: boolean;
}

/** A machine's serial console as recorded for the report: a file next to it, and how many lines. */
export interface SerialRecord {
  machine: string;
  /** Absolute path of the file (one line per console line, prefixed with its time in seconds), or undefined without a directory. */
  path: string | undefined;
  lines: number;
}

/** Spans kept for the timeline; beyond this the shortest are dropped (the slowest table keeps its own ten). */
const MAX_SPANS = 20_000;
const SERIAL_BUFFER_CHARS = 64 << 10;
/** The machine's block that waits for its shell (runtime/machine/machine.ts). */
const BOOT_WAIT = "waiting for the VM to finish booting";

/** The file name of a machine's console next to the report. */
export function serialFileName(machine: string): string {
  return `console-${machine.replace(/[^\w.-]/g, "_")}.txt`;
}

/** A machine's console file next to the report (none without a directory), and how many lines it has. */
class SerialFile {
  lines = 0;
  private readonly file: FileWriter | undefined;

  constructor(readonly path: string | undefined) {
    if (path !== undefined) this.file = new FileWriter(path, SERIAL_BUFFER_CHARS);
  }

  add(text: string): void {
    this.lines++;
    this.file?.write(text);
  }

  flush(): void {
    this.file?.flush();
  }

  close(): void {
    this.file?.close();
  }
}

/**
 * Keeps what the reports written at the end need, plain (no colour, no
 * escapes): the driver's own log lines (JUnit's system-out, the HTML log),
 * the timeline's spans, and the serial consoles — those stream to files in
 * `dir` (`console-<machine>.txt`, next to report.html), never to memory, so
 * a guest flooding its console costs no memory here.
 */
export class RecordSink implements LogSink {
  readonly lines: RecordedLine[] = [];
  readonly spans: Span[] = [];
  private readonly serialFiles = new Map<string, SerialFile>();
  private readonly began = performance.now();
  /** Frame ids and their ancestors, to tell which lines belong to a block. */
  private readonly parents = new Map<number, number | undefined>();
  /** Open blocks that are a machine's outermost one: they become command spans. */
  private readonly spanFrames = new Set<number>();
  private droppedSpans = 0;

  /** `dir`: where the console files go (the output directory); without it only line counts are kept. */
  constructor(private readonly dir?: string) {}

  line(level: LogLevel, message: string, attrs: LogAttrs, frame: LogFrame | undefined): void {
    this.push(level, attrs.machine, message, frame === undefined ? 0 : frame.depth + 1, frame?.id);
  }

  serial(machine: string, line: string): void {
    let file = this.serialFiles.get(machine);
    if (file === undefined) {
      file = new SerialFile(this.dir === undefined ? undefined : join(this.dir, serialFileName(machine)));
      this.serialFiles.set(machine, file);
    }
    file.add(`${this.now().toFixed(2).padStart(8)}  ${clean(line)}\n`);
  }

  open(frame: LogFrame): void {
    this.parents.set(frame.id, frame.parent?.id);
    this.push("info", frame.attrs.machine, frame.message, frame.depth, frame.id);
    const machine = frame.attrs.machine;
    // The wait for the shell is drawn as the boot span (start → shell) instead.
    if (machine !== undefined && frame.message !== BOOT_WAIT && !this.insideMachineBlock(frame.parent, machine)) this.spanFrames.add(frame.id);
  }

  close(frame: LogFrame, seconds: number, error: unknown): void {
    const verb = error === undefined ? "finished" : "failed";
    this.push(
      error === undefined ? "info" : "error",
      frame.attrs.machine,
      `(${verb}: ${frame.message}, in ${seconds.toFixed(2)} seconds)`,
      frame.depth,
      frame.id,
    );
    if (this.spanFrames.delete(frame.id)) {
      this.addSpan({
        machine: frame.attrs.machine as string,
        label: clean(frame.message),
        kind: "command",
        start: (frame.start - this.began) / 1000,
        seconds,
        failed: error !== undefined,
      });
    }
  }

  span(span: TimedSpan): void {
    this.addSpan({
      machine: span.machine,
      label: span.label,
      kind: span.kind,
      start: (span.start - this.began) / 1000,
      seconds: (span.end - span.start) / 1000,
      failed: false,
    });
  }

  flush(): void {
    for (const f of this.serialFiles.values()) f.flush();
  }

  end(): void {
    this.flush();
  }

  /** The consoles, by machine name; their files are complete once this returns. */
  serialConsoles(): SerialRecord[] {
    this.flush();
    return [...this.serialFiles.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([machine, f]) => ({ machine, path: f.path, lines: f.lines }));
  }

  /** Closes the console files (the report has been written). */
  closeFiles(): void {
    for (const f of this.serialFiles.values()) f.close();
  }

  /** How many short spans were left off the timeline to bound memory. */
  get spansDropped(): number {
    return this.droppedSpans;
  }

  /** The log as text, optionally only what happened inside block `frame` (and its children). */
  text(frame?: number): string {
    return this.lines
      .filter((l) => frame === undefined || this.within(l.frame, frame))
      .map((l) => `${"  ".repeat(l.depth)}${l.machine === undefined ? "" : `${l.machine}: `}${l.text}`)
      .join("\n");
  }

  private addSpan(span: Span): void {
    this.spans.push(span);
    if (this.spans.length > MAX_SPANS) {
      // Keep the longer half: those are what the timeline is for.
      this.spans.sort((a, b) => b.seconds - a.seconds);
      const cut = this.spans.length - MAX_SPANS / 2;
      this.spans.splice(MAX_SPANS / 2, cut);
      this.droppedSpans += cut;
      this.spans.sort((a, b) => a.start - b.start);
    }
  }

  private insideMachineBlock(frame: LogFrame | undefined, machine: string): boolean {
    for (let f = frame; f !== undefined; f = f.parent) if (f.attrs.machine === machine) return true;
    return false;
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
