import { renameSync, writeFileSync } from "node:fs";
import { create } from "xmlbuilder2";
import type { XMLBuilder } from "xmlbuilder2/lib/interfaces.js";
import type { LogAttrs, LogFrame, LogLevel, LogSink } from "./logger.js";

/** How long new log lines may wait before the file is rewritten. */
const FLUSH_DELAY_MS = 1000;

/**
 * The XML log, with the Python driver's elements:
 * `<logfile>`, `<nest><head machine=…>msg</head> … </nest>`, `<line machine=… [type="serial"]>`.
 *
 * Blocks of different machines may overlap in time, which a streamed file
 * cannot nest correctly; so the log is kept as a tree and the file is
 * rewritten whole (write a temporary file, then rename) at most once a
 * second and at the end. The file on disk is therefore well-formed at every
 * moment, even if the driver is killed with SIGKILL.
 */
export class XmlLogSink implements LogSink {
  private readonly root: XMLBuilder;
  private readonly nodes = new Map<number, XMLBuilder>();
  /** Open blocks in the order they opened; serial lines go into the newest one. */
  private readonly open_: LogFrame[] = [];
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;

  constructor(private readonly path: string) {
    this.root = create({ version: "1.0", encoding: "UTF-8" }).ele("logfile");
    this.write();
  }

  line(level: LogLevel, message: string, attrs: LogAttrs, frame: LogFrame | undefined): void {
    const extra: LogAttrs = level === "info" ? {} : { level };
    this.parentOf(frame).ele("line", xmlAttrs({ ...attrs, ...extra })).txt(clean(message));
    this.changed();
  }

  serial(machine: string, line: string): void {
    const newest = this.open_[this.open_.length - 1];
    this.parentOf(newest).ele("line", { machine, type: "serial" }).txt(clean(line));
    this.changed();
  }

  open(frame: LogFrame): void {
    const nest = this.parentOf(frame.parent).ele("nest");
    nest.ele("head", xmlAttrs(frame.attrs)).txt(clean(frame.message));
    this.nodes.set(frame.id, nest);
    this.open_.push(frame);
    this.changed();
  }

  close(frame: LogFrame, seconds: number, error: unknown): void {
    const nest = this.nodes.get(frame.id);
    if (nest === undefined) return;
    const verb = error === undefined ? "finished" : "failed";
    nest.ele("line", xmlAttrs(frame.attrs)).txt(clean(`(${verb}: ${frame.message}, in ${seconds.toFixed(2)} seconds)`));
    this.nodes.delete(frame.id);
    const at = this.open_.indexOf(frame);
    if (at !== -1) this.open_.splice(at, 1);
    this.changed();
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.dirty) this.write();
  }

  end(): void {
    this.flush();
  }

  private parentOf(frame: LogFrame | undefined): XMLBuilder {
    // A frame whose node is gone (closed already) logs into its nearest open ancestor.
    for (let f = frame; f !== undefined; f = f.parent) {
      const node = this.nodes.get(f.id);
      if (node !== undefined) return node;
    }
    return this.root;
  }

  private changed(): void {
    this.dirty = true;
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), FLUSH_DELAY_MS);
      this.timer.unref();
    }
  }

  private write(): void {
    this.dirty = false;
    if (this.path === "/dev/null") return; // nix builds set LOGFILE=/dev/null to turn it off
    const text = this.root.end({ prettyPrint: true });
    const tmp = `${this.path}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, this.path);
  }
}

function xmlAttrs(attrs: LogAttrs): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) out[k] = clean(v);
  return out;
}

/** XML 1.0 cannot hold most control characters; terminal escapes are noise in a log anyway. */
export function clean(text: string): string {
  return (
    text
      // eslint-disable-next-line no-control-regex
      .replace(/\x1b(?:\[[0-?]*[ -/]*[@-~]|[ -/]*[0-~])/g, "")
      // eslint-disable-next-line no-control-regex
      .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]/g, "")
      .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd")
  );
}
