import { closeSync, ftruncateSync, openSync, writeSync } from "node:fs";
import type { LogAttrs, LogFrame, LogLevel, LogSink } from "./logger.js";

/** How long new log lines may wait before they reach the file. */
const FLUSH_DELAY_MS = 250;
/** Pending text beyond this is written at once, so memory stays bounded during a flood. */
const FLUSH_BYTES = 256 << 10;
const LOGFILE_END = "</logfile>\n";

/**
 * The XML log, with the Python driver's elements:
 * `<logfile>`, `<nest><head machine=…>msg</head> … </nest>`, `<line machine=… [type="serial"]>`.
 *
 * Streamed: each flush writes the new text over the closing tags left at the
 * end of the file by the previous flush, followed by the closing tags of the
 * blocks still open. Cost per line is O(1) whatever the length of the log, and
 * the file on disk is a complete document after every flush (each flush is
 * one positioned write; nothing is ever rewritten before the old end).
 *
 * Order, with blocks that overlap in time (two machines' commands running
 * concurrently): the file is in time order, and a `<nest>` is a stretch of
 * time. Lines go into the block they were logged in; when that block is not
 * the one open at the end of the file, the blocks open there are closed up to
 * the common ancestor and the line's block is opened again with a `<head … continued="true">`
 * repeating its header. So a block that was interrupted by another one is
 * split into several `<nest>`s, the later ones marked `continued`; no line is
 * ever moved or written twice. Serial lines go wherever the file is (the
 * innermost block open at its end), as nixpkgs writes them where the log is.
 */
export class XmlLogSink implements LogSink {
  private readonly fd: number | undefined;
  /** Byte offset where the closing tags of the open blocks begin. */
  private committed = 0;
  private fileLength = 0;
  private pending: string[] = [];
  private pendingBytes = 0;
  /** Blocks whose `<nest>` is open at the end of the file, outermost first. */
  private readonly stack: LogFrame[] = [];
  /** Blocks the logger has opened and not closed yet, by id. */
  private readonly live = new Map<number, LogFrame>();
  /** Ids of live blocks whose head has been written once (a second head is a continuation). */
  private readonly headed = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(path: string) {
    // nix builds set LOGFILE=/dev/null to turn it off: do no work at all then.
    if (path === "/dev/null") return;
    this.fd = openSync(path, "w");
    this.append(`<?xml version="1.0" encoding="UTF-8"?>\n<logfile>\n`);
    this.write();
  }

  line(level: LogLevel, message: string, attrs: LogAttrs, frame: LogFrame | undefined): void {
    if (this.fd === undefined) return;
    this.enter(this.chainOf(frame));
    const extra = level === "info" ? "" : ` level="${level}"`;
    this.append(`${this.indent()}<line${attrText(attrs)}${extra}>${escapeText(clean(message))}</line>\n`);
  }

  serial(machine: string, line: string): void {
    if (this.fd === undefined) return;
    this.append(`${this.indent()}<line machine="${escapeAttr(clean(machine))}" type="serial">${escapeText(clean(line))}</line>\n`);
  }

  open(frame: LogFrame): void {
    if (this.fd === undefined) return;
    this.live.set(frame.id, frame);
    this.enter(this.chainOf(frame));
  }

  close(frame: LogFrame, seconds: number, error: unknown): void {
    if (this.fd === undefined || !this.live.has(frame.id)) return;
    this.enter(this.chainOf(frame));
    const verb = error === undefined ? "finished" : "failed";
    this.append(`${this.indent()}<line${attrText(frame.attrs)}>${escapeText(clean(`(${verb}: ${frame.message}, in ${seconds.toFixed(2)} seconds)`))}</line>\n`);
    this.stack.pop();
    this.append(`${this.indent()}</nest>\n`);
    this.live.delete(frame.id);
    this.headed.delete(frame.id);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length > 0) this.write();
  }

  /** Writes everything; later lines (a cleanup message after the end) are written as they come. */
  end(): void {
    this.ended = true;
    this.flush();
  }

  /** For tests: close the file descriptor. */
  closeFile(): void {
    this.end();
    if (this.fd !== undefined) closeSync(this.fd);
  }

  /** The live blocks from the outermost to `frame`; blocks closed already are skipped (their lines go to the nearest live ancestor). */
  private chainOf(frame: LogFrame | undefined): LogFrame[] {
    const chain: LogFrame[] = [];
    for (let f = frame; f !== undefined; f = f.parent) if (this.live.has(f.id)) chain.push(f);
    return chain.reverse();
  }

  /** Makes `chain` the blocks open at the end of the file: closes what is not in it, opens (or reopens) what is missing. */
  private enter(chain: LogFrame[]): void {
    let common = 0;
    while (common < this.stack.length && common < chain.length && this.stack[common] === chain[common]) common++;
    while (this.stack.length > common) {
      this.stack.pop();
      this.append(`${this.indent()}</nest>\n`);
    }
    for (let i = common; i < chain.length; i++) {
      const frame = chain[i] as LogFrame;
      const continued = this.headed.has(frame.id) ? ` continued="true"` : "";
      this.headed.add(frame.id);
      const indent = this.indent();
      this.append(`${indent}<nest>\n${indent}  <head${attrText(frame.attrs)}${continued}>${escapeText(clean(frame.message))}</head>\n`);
      this.stack.push(frame);
    }
  }

  private indent(): string {
    return "  ".repeat(this.stack.length + 1);
  }

  private append(text: string): void {
    this.pending.push(text);
    this.pendingBytes += text.length;
    if (this.ended || this.pendingBytes >= FLUSH_BYTES) {
      this.flush();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), FLUSH_DELAY_MS);
      this.timer.unref();
    }
  }

  /** One positioned write: the new text over the old closing tags, then the closing tags of what is open now. */
  private write(): void {
    if (this.fd === undefined) return;
    const body = Buffer.from(this.pending.join(""));
    this.pending = [];
    this.pendingBytes = 0;
    let tail = "";
    for (let depth = this.stack.length; depth > 0; depth--) tail += `${"  ".repeat(depth)}</nest>\n`;
    tail += LOGFILE_END;
    const out = Buffer.concat([body, Buffer.from(tail)]);
    let done = 0;
    while (done < out.length) done += writeSync(this.fd, out, done, out.length - done, this.committed + done);
    this.committed += body.length;
    const end = this.committed + out.length - body.length;
    // The closing tags never get shorter than the text that replaces them, but stay exact if they do.
    if (end < this.fileLength) ftruncateSync(this.fd, end);
    this.fileLength = end;
  }
}

function attrText(attrs: LogAttrs): string {
  let out = "";
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && /^[A-Za-z_][\w.-]*$/.test(k)) out += ` ${k}="${escapeAttr(clean(v))}"`;
  return out;
}

const TEXT_SPECIAL = /[&<>]/;
const ATTR_SPECIAL = /[&<>"\n\r\t]/;

export function escapeText(text: string): string {
  if (!TEXT_SPECIAL.test(text)) return text;
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function escapeAttr(text: string): string {
  if (!ATTR_SPECIAL.test(text)) return text;
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/\n/g, "&#10;")
    .replace(/\r/g, "&#13;")
    .replace(/\t/g, "&#9;");
}

// eslint-disable-next-line no-control-regex
const NEEDS_CLEANING = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]/;

/** XML 1.0 cannot hold most control characters; terminal escapes are noise in a log anyway. */
export function clean(text: string): string {
  // Most lines are plain: one scan instead of three replaces.
  if (!NEEDS_CLEANING.test(text)) return text;
  return (
    text
      // eslint-disable-next-line no-control-regex
      .replace(/\x1b(?:\[[0-?]*[ -/]*[@-~]|[ -/]*[0-~])/g, "")
      // eslint-disable-next-line no-control-regex
      .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]/g, "")
      .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd")
  );
}
