// runtime/log/xml.ts + runtime/log/logger.ts: the XML log (nixpkgs' elements),
// checked with a small strict XML reader written here.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { Logger, type LogAttrs, type LogFrame, type LogLevel, type LogSink } from "../../runtime/log/logger.js";
import { XmlLogSink, clean } from "../../runtime/log/xml.js";

// ---------------------------------------------------------------------------
// A small strict XML reader: declaration, one root, balanced tags, quoted
// attributes, only the five predefined entities and character references,
// no character XML 1.0 forbids. Anything else throws.

interface Element {
  name: string;
  attrs: Record<string, string>;
  children: Array<Element | string>;
}

const FORBIDDEN = /[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function decode(text: string, where: string): string {
  if (text.includes("<")) throw new Error(`raw < in ${where}`);
  return text.replace(/&([^;]*);?/g, (all, ref: string) => {
    if (!all.endsWith(";")) throw new Error(`unterminated entity in ${where}: ${all}`);
    const named: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };
    if (ref in named) return named[ref] as string;
    const m = /^#(x[0-9A-Fa-f]+|[0-9]+)$/.exec(ref);
    if (m === null) throw new Error(`unknown entity &${ref}; in ${where}`);
    const code = m[1]!.startsWith("x") ? parseInt(m[1]!.slice(1), 16) : parseInt(m[1]!, 10);
    const ch = String.fromCodePoint(code);
    if (FORBIDDEN.test(ch)) throw new Error(`forbidden character reference &${ref}; in ${where}`);
    return ch;
  });
}

function parseXml(text: string): Element {
  const decl = /^<\?xml version="1\.0"( encoding="UTF-8")?\?>/.exec(text);
  if (decl === null) throw new Error('no <?xml version="1.0"?> declaration at the start');
  const bad = FORBIDDEN.exec(text);
  if (bad !== null) throw new Error(`forbidden character U+${bad[0].charCodeAt(0).toString(16)} at ${bad.index}`);
  const stack: Element[] = [];
  let root: Element | undefined;
  let at = decl[0].length;
  while (at < text.length) {
    const lt = text.indexOf("<", at);
    const chunk = text.slice(at, lt === -1 ? text.length : lt);
    if (chunk !== "") {
      const top = stack[stack.length - 1];
      if (top === undefined) {
        if (chunk.trim() !== "") throw new Error(`text outside the root element: ${JSON.stringify(chunk)}`);
      } else {
        top.children.push(decode(chunk, `<${top.name}>`));
      }
    }
    if (lt === -1) break;
    const gt = text.indexOf(">", lt);
    if (gt === -1) throw new Error(`unclosed tag at ${lt}`);
    const tag = text.slice(lt + 1, gt);
    at = gt + 1;
    if (tag.startsWith("/")) {
      const open = stack.pop();
      if (open === undefined || open.name !== tag.slice(1)) throw new Error(`</${tag.slice(1)}> closes ${open === undefined ? "nothing" : `<${open.name}>`}`);
      continue;
    }
    if (tag.startsWith("!") || tag.startsWith("?")) throw new Error(`unexpected markup <${tag}>`);
    const selfClosing = tag.endsWith("/");
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const name = /^[^\s]+/.exec(body)?.[0] ?? "";
    if (!NAME.test(name)) throw new Error(`bad element name ${JSON.stringify(name)}`);
    const attrs: Record<string, string> = {};
    let rest = body.slice(name.length);
    for (;;) {
      rest = rest.replace(/^\s+/, "");
      if (rest === "") break;
      const m = /^([A-Za-z_][A-Za-z0-9_.-]*)="([^"]*)"/.exec(rest);
      if (m === null) throw new Error(`bad attribute syntax in <${name}>: ${JSON.stringify(rest)}`);
      if (m[1]! in attrs) throw new Error(`duplicate attribute ${m[1]} in <${name}>`);
      attrs[m[1]!] = decode(m[2]!, `attribute ${m[1]}`);
      if (rest.length > m[0].length && !/^\s/.test(rest.slice(m[0].length))) throw new Error(`no space between attributes in <${name}>`);
      rest = rest.slice(m[0].length);
    }
    const element: Element = { name, attrs, children: [] };
    const parent = stack[stack.length - 1];
    if (parent === undefined) {
      if (root !== undefined) throw new Error("more than one root element");
      root = element;
    } else {
      parent.children.push(element);
    }
    if (!selfClosing) stack.push(element);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  if (root === undefined) throw new Error("no root element");
  return root;
}

/** Child elements (whitespace between them is layout). */
function elements(e: Element): Element[] {
  return e.children.filter((c): c is Element => typeof c !== "string");
}

function textOf(e: Element): string {
  return e.children.map((c) => (typeof c === "string" ? c : textOf(c))).join("");
}

/** A compact view: `line:text`, `nest:head text[...]`. */
function outline(e: Element): unknown[] {
  return elements(e).map((c) => {
    if (c.name === "nest") {
      const [head, ...rest] = elements(c);
      assert.equal(head?.name, "head", "a <nest> begins with its <head>");
      return { [`nest ${textOf(head!)}`]: outline({ ...c, children: rest }) };
    }
    return `${c.name}:${textOf(c)}`;
  });
}

describe("the test's XML reader", () => {
  test("accepts what it should", () => {
    const root = parseXml(`<?xml version="1.0" encoding="UTF-8"?>\n<a x="1 &amp; 2"><b/>t&lt;&#65;&#x42;<c y="&quot;">u</c></a>\n`);
    assert.equal(root.name, "a");
    assert.equal(root.attrs.x, "1 & 2");
    assert.deepEqual(outline(root), ["b:", "c:u"]);
    assert.equal(textOf(root), "t<ABu");
  });

  test("rejects malformed XML", () => {
    const decl = `<?xml version="1.0" encoding="UTF-8"?>`;
    const bad = [
      "<a></a>", // no declaration
      `${decl}<a><b></a></b>`, // crossed
      `${decl}<a>`, // unclosed
      `${decl}<a></a><b></b>`, // two roots
      `${decl}<a>x & y</a>`, // raw &
      `${decl}<a>&nbsp;</a>`, // unknown entity
      `${decl}<a x=1></a>`, // unquoted attribute
      `${decl}<a x="1" x="2"></a>`, // duplicate attribute
      `${decl}<a>\x1b[2J</a>`, // control character
      `${decl}<a>\x00</a>`,
      `${decl}<a>\ud800</a>`, // lone surrogate
      `${decl}<a>&#0;</a>`,
      `${decl}text<a></a>`,
      `${decl}<a><!-- c --></a>`,
      `${decl}<1a></1a>`,
      "",
    ];
    for (const text of bad) assert.throws(() => parseXml(text), Error, JSON.stringify(text));
  });
});

// ---------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), "ntt-xml-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function newLog(): { path: string; logger: Logger; sink: XmlLogSink; read(): Element } {
  const path = join(dir, `log-${++n}.xml`);
  const sink = new XmlLogSink(path);
  const logger = new Logger([sink]);
  return { path, logger, sink, read: () => parseXml(readFileSync(path, "utf8")) };
}

/** A sink that records calls, to see the order in which things happened. */
class CallSink implements LogSink {
  readonly calls: string[] = [];
  ended = 0;
  line(level: LogLevel, message: string, attrs: LogAttrs, frame: LogFrame | undefined): void {
    this.calls.push(`line ${message}${frame ? ` @${frame.message}` : ""}`);
  }
  serial(machine: string, line: string): void {
    this.calls.push(`serial ${machine} ${line}`);
  }
  open(frame: LogFrame): void {
    this.calls.push(`open ${frame.message} depth=${frame.depth} parent=${frame.parent?.message ?? "-"}`);
  }
  close(frame: LogFrame, _seconds: number, error: unknown): void {
    this.calls.push(`close ${frame.message}${error === undefined ? "" : " failed"}`);
  }
  flush(): void {}
  end(): void {
    this.ended++;
  }
}

describe("XmlLogSink with Logger", () => {
  test("the file exists and is well-formed from the start: an empty <logfile>", () => {
    const { path, read } = newLog();
    assert.ok(readFileSync(path, "utf8").startsWith('<?xml version="1.0"'));
    const root = read();
    assert.equal(root.name, "logfile");
    assert.deepEqual(elements(root), []);
  });

  test("lines: text escaped, machine attribute, level only when not info", () => {
    const { logger, read } = newLog();
    logger.log('hello <&> "q"', { machine: "m1" });
    logger.warning("careful");
    logger.error("broken", { machine: "m2" });
    logger.debug("detail");
    logger.end();
    const lines = elements(read());
    assert.deepEqual(
      lines.map((l) => [l.name, l.attrs, textOf(l)]),
      [
        ["line", { machine: "m1" }, 'hello <&> "q"'],
        ["line", { level: "warning" }, "careful"],
        ["line", { machine: "m2", level: "error" }, "broken"],
        ["line", { level: "debug" }, "detail"],
      ],
    );
  });

  test("nested blocks: <nest><head>…</head> lines, inner nests, a closing line", async () => {
    const { logger, read } = newLog();
    logger.log("before");
    const value = await logger.nested("outer", { machine: "m" }, async () => {
      logger.log("in outer");
      await logger.nested("inner", { machine: "m" }, async () => {
        logger.log("in inner");
      });
      logger.log("after inner");
      return 42;
    });
    assert.equal(value, 42);
    logger.log("after");
    logger.end();
    const root = read();
    const out = outline(root) as Array<string | Record<string, unknown[]>>;
    assert.equal(out.length, 3);
    assert.equal(out[0], "line:before");
    assert.equal(out[2], "line:after");
    const outer = (out[1] as Record<string, unknown[]>)["nest outer"];
    assert.ok(outer !== undefined, JSON.stringify(out));
    assert.equal(outer[0], "line:in outer");
    assert.deepEqual(Object.keys(outer[1] as object), ["nest inner"]);
    const inner = (outer[1] as Record<string, string[]>)["nest inner"]!;
    assert.equal(inner[0], "line:in inner");
    assert.match(inner[1]!, /^line:\(finished: inner, in \d+\.\d\d seconds\)$/);
    assert.equal(outer[2], "line:after inner");
    assert.match(outer[3] as string, /^line:\(finished: outer, in \d+\.\d\d seconds\)$/);
    assert.equal(outer.length, 4);
    // The head carries the block's attributes.
    const nest = elements(root)[1]!;
    assert.deepEqual(elements(nest)[0]?.attrs, { machine: "m" });
  });

  test("a failing block closes with 'failed' and the error goes on", async () => {
    const { logger, read } = newLog();
    const boom = new Error("boom");
    await assert.rejects(
      logger.nested("doomed", {}, async () => {
        logger.log("trying");
        throw boom;
      }),
      (e) => e === boom,
    );
    logger.end();
    const [nest] = outline(read()) as Array<Record<string, string[]>>;
    const lines = nest?.["nest doomed"];
    assert.equal(lines?.[0], "line:trying");
    assert.match(lines?.[1] ?? "", /^line:\(failed: doomed, in \d+\.\d\d seconds\)$/);
  });

  test("two blocks running concurrently: time order, an interrupted block goes on in a `continued` nest", async () => {
    const { logger, sink, read } = newLog();
    const calls = new CallSink();
    logger.addSink(calls);
    await logger.nested("outer", {}, async () => {
      await Promise.all([
        logger.nested("block a", { machine: "a" }, async () => {
          logger.log("a1", { machine: "a" });
          await delay(30);
          logger.log("a2", { machine: "a" });
          await delay(60);
          logger.log("a3", { machine: "a" });
        }),
        logger.nested("block b", { machine: "b" }, async () => {
          await delay(15);
          logger.log("b1", { machine: "b" });
          await delay(30);
          logger.log("b2", { machine: "b" });
        }),
      ]);
    });
    sink.end();
    // They really interleaved...
    assert.deepEqual(
      calls.calls.filter((c) => c.startsWith("line ")),
      ["line a1 @block a", "line b1 @block b", "line a2 @block a", "line b2 @block b", "line a3 @block a"],
    );
    // ... and the file keeps that order; every line sits in a nest of its own block.
    const root = read();
    const outer = elements(root)[0]!;
    const segments = elements(outer).filter((e) => e.name === "nest");
    const described = segments.map((n) => {
      const [head, ...rest] = elements(n);
      return `${textOf(head!)}${head!.attrs.continued === "true" ? " (continued)" : ""}: ${rest.map((l) => textOf(l).replace(/, in .*/, "")).join(" | ")}`;
    });
    assert.deepEqual(described, [
      "block a: a1",
      "block b: b1",
      "block a (continued): a2",
      "block b (continued): b2 | (finished: block b",
      "block a (continued): a3 | (finished: block a",
    ]);
    assert.match(textOf(elements(outer).at(-1)!), /^\(finished: outer, in/);
  });

  test("a flood: O(1) per line (the file only grows at its end), every line exactly once, well-formed after every flush", () => {
    const { logger, path, read } = newLog();
    let previous = "";
    const count = 20_000;
    void logger.nested("flooding", { machine: "m" }, async () => {
      for (let i = 0; i < count; i++) {
        logger.serial("m", `flood line ${i}`);
        if (i % 2500 === 0) {
          logger.flush();
          const now = readFileSync(path, "utf8");
          parseXml(now);
          // Everything but the closing tags of the previous flush is kept byte for byte.
          const kept = previous.slice(0, previous.lastIndexOf("<line") === -1 ? previous.indexOf("<logfile>") : previous.lastIndexOf("</line>\n") + 8);
          assert.ok(now.startsWith(kept), "the file is only extended");
          previous = now;
        }
      }
      await delay(0);
    });
    logger.flush();
    const nest = elements(read())[0]!;
    const serial = elements(nest)
      .filter((e) => e.attrs.type === "serial")
      .map(textOf);
    assert.equal(serial.length, count);
    assert.ok(serial.every((t, i) => t === `flood line ${i}`));
    logger.end();
  });

  test("a line logged after its block closed goes into the nearest open ancestor", async () => {
    const { logger, read } = newLog();
    await logger.nested("outer", {}, async () => {
      let late: Promise<void> | undefined;
      await logger.nested("short", {}, async () => {
        // Inherits the "short" block's context, but runs after it closed.
        late = delay(20).then(() => logger.log("late line"));
      });
      await late;
    });
    logger.end();
    const out = outline(read()) as Array<Record<string, Array<string | object>>>;
    const outer = out[0]!["nest outer"]!;
    assert.equal(outer[1], "line:late line");
    const short = (outer[0] as Record<string, string[]>)["nest short"]!;
    assert.equal(short.length, 1); // just its closing line
  });

  test('serial lines: type="serial" and the machine, in the open block (or at the top)', async () => {
    const { logger, read } = newLog();
    logger.serial("m1", "before any block");
    await logger.nested("booting", { machine: "m1" }, async () => {
      logger.serial("m1", "[    0.000000] Linux version");
    });
    logger.end();
    const root = read();
    const [first, nest] = elements(root);
    assert.deepEqual([first?.name, first?.attrs, textOf(first!)], ["line", { machine: "m1", type: "serial" }, "before any block"]);
    const serial = elements(nest!)[1]!;
    assert.deepEqual([serial.name, serial.attrs, textOf(serial)], ["line", { machine: "m1", type: "serial" }, "[    0.000000] Linux version"]);
  });

  test("control characters and terminal escapes are stripped, lone surrogates replaced", () => {
    const { logger, path, read } = newLog();
    logger.log("a\x1b[2Jb\x1bcc\x00d\x07e\x1b[1;31mred\x1b[0m\x7f", { machine: "m\x07" });
    logger.serial("m", "x\ud800y\udc00z \u{1F600} tab\tnew\nline");
    logger.end();
    const text = readFileSync(path, "utf8");
    assert.doesNotMatch(text, /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/);
    const [line, serial] = elements(read());
    assert.equal(textOf(line!), "abcdered");
    assert.equal(line?.attrs.machine, "m");
    assert.equal(textOf(serial!), "x\ufffdy\ufffdz \u{1F600} tab\tnew\nline");
  });

  test("clean() on its own", () => {
    assert.equal(clean("\x1b[2J\x1bc\x00\x07ok"), "ok");
    assert.equal(clean("\ud83d"), "\ufffd");
    assert.equal(clean("\ude00"), "\ufffd");
    assert.equal(clean("\ud83d\ude00"), "\u{1F600}");
    assert.equal(clean("keep\ttab\nnewline\rcr"), "keep\ttab\nnewline\rcr");
  });

  test("the file is well-formed while a block is still open (after flush inside it)", async () => {
    const { logger, read } = newLog();
    await logger.nested("still running", { machine: "m" }, async () => {
      logger.log("first");
      await logger.nested("inner open", {}, async () => {
        logger.log("deep");
        logger.flush();
        const out = outline(read());
        assert.deepEqual(out, [{ "nest still running": ["line:first", { "nest inner open": ["line:deep"] }] }]);
      });
    });
    logger.end();
    assert.equal((outline(read())[0] as Record<string, unknown[]>)["nest still running"]?.length, 3);
  });

  test("without flush, new lines reach the file within about a second", async () => {
    const { logger, read } = newLog();
    logger.log("pending");
    assert.deepEqual(outline(read()), []);
    await delay(1300);
    assert.deepEqual(outline(read()), ["line:pending"]);
    logger.end();
  });

  test("no temporary file is left next to it", () => {
    const { logger, path } = newLog();
    for (let i = 0; i < 5; i++) {
      logger.log(`line ${i}`);
      logger.flush();
    }
    logger.end();
    const name = path.slice(dir.length + 1);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith(name)),
      [name],
    );
  });

  test("LOGFILE=/dev/null: nothing is written, nothing throws, /dev/null stays a device", async () => {
    const sink = new XmlLogSink("/dev/null");
    const logger = new Logger([sink]);
    logger.log("into the void");
    await logger.nested("block", {}, async () => {
      logger.serial("m", "serial");
      logger.flush();
    });
    logger.end();
    assert.ok(statSync("/dev/null").isCharacterDevice());
    assert.equal(existsSync(`/dev/null.tmp-${process.pid}`), false);
    assert.equal(readFileSync("/dev/null", "utf8"), "");
  });
});

describe("Logger", () => {
  test("fans out to every sink; frames know their parent and depth; currentFrame follows the async chain", async () => {
    const a = new CallSink();
    const b = new CallSink();
    const logger = new Logger([a]);
    logger.addSink(b);
    assert.equal(logger.currentFrame(), undefined);
    await logger.nested("x", {}, async () => {
      assert.equal(logger.currentFrame()?.message, "x");
      await logger.nested("y", {}, async () => {
        await delay(1);
        assert.equal(logger.currentFrame()?.message, "y");
        logger.log("hi");
      });
    });
    assert.equal(logger.currentFrame(), undefined);
    const expected = ["open x depth=0 parent=-", "open y depth=1 parent=x", "line hi @y", "close y", "close x"];
    assert.deepEqual(a.calls, expected);
    assert.deepEqual(b.calls, expected);
  });

  test("end() ends each sink once, even if called twice", () => {
    const a = new CallSink();
    const logger = new Logger([a]);
    logger.end();
    logger.end();
    assert.equal(a.ended, 1);
  });

  test("a block that throws undefined still closes as failed", async () => {
    const a = new CallSink();
    const logger = new Logger([a]);
    await assert.rejects(
      logger.nested("odd", {}, async () => {
        throw undefined;
      }),
      (e) => e === undefined,
    );
    assert.deepEqual(a.calls, ["open odd depth=0 parent=-", "close odd failed"]);
  });
});
