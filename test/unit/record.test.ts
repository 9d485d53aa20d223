// runtime/log/record.ts: what the reports are built from — the timeline's
// spans (a machine's outermost blocks, its boot) and the consoles, which go
// to files next to the report instead of memory.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { Logger } from "../../runtime/log/logger.js";
import { RecordSink, serialFileName } from "../../runtime/log/record.js";
import { slowestSection, timelineSection } from "../../runtime/report/timeline.js";

const dir = mkdtempSync(join(tmpdir(), "ntt-record-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("spans: a machine's outermost blocks with their durations, failed ones marked; the boot from its own hook", async () => {
  const record = new RecordSink();
  const logger = new Logger([record]);
  const t0 = performance.now();
  await logger.nested("subtest: x", {}, async () => {
    await Promise.all([
      logger.nested("must succeed: a", { machine: "a" }, async () => {
        await logger.nested("waiting for the VM to finish booting", { machine: "a" }, () => delay(20));
        await logger.nested("inner of a", { machine: "a" }, () => delay(20));
      }),
      logger
        .nested("must fail: b", { machine: "b" }, async () => {
          await delay(30);
          throw new Error("no");
        })
        .catch(() => undefined),
    ]);
  });
  logger.nested("waiting for the VM to finish booting", { machine: "c" }, () => delay(1));
  logger.span({ machine: "c", label: "boot", kind: "boot", start: t0, end: t0 + 1500 });
  await delay(5);
  const spans = record.spans.map((s) => ({ machine: s.machine, label: s.label, kind: s.kind, failed: s.failed }));
  assert.deepEqual(
    spans.sort((x, y) => x.machine.localeCompare(y.machine)),
    [
      { machine: "a", label: "must succeed: a", kind: "command", failed: false },
      { machine: "b", label: "must fail: b", kind: "command", failed: true },
      { machine: "c", label: "boot", kind: "boot", failed: false },
    ],
  );
  const a = record.spans.find((s) => s.machine === "a")!;
  const b = record.spans.find((s) => s.machine === "b")!;
  // Timers may fire a millisecond early by performance.now(): bounds with that slack.
  assert.ok(a.seconds >= 0.035 && b.seconds >= 0.025, `a ${a.seconds} s, b ${b.seconds} s`);
  assert.ok(Math.max(a.start, b.start) < Math.min(a.start + a.seconds, b.start + b.seconds), "concurrent spans overlap");
  assert.ok(Math.abs(record.spans.find((s) => s.kind === "boot")!.seconds - 1.5) < 1e-9);
  const html = timelineSection({ name: "t", duration: 2, error: undefined, cases: [] }, record.spans, 0);
  assert.equal(html.match(/class="lane" data-machine=/g)?.length, 3);
  const slowest = slowestSection(record.spans);
  assert.equal(slowest.match(/<tr class=/g)?.length, 2, "boots are not commands");
  assert.match(slowest, /<tr class="fail">.*must fail: b/);
});

test("serial lines go to console-<machine>.txt, with their time; nothing of them stays in memory", () => {
  const record = new RecordSink(dir);
  const logger = new Logger([record]);
  for (let i = 0; i < 50_000; i++) logger.serial("web/1", `line ${i} \x1b[1mbold\x1b[0m`);
  logger.serial("db", "one");
  const consoles = record.serialConsoles();
  assert.deepEqual(
    consoles.map((c) => [c.machine, c.lines, c.path]),
    [
      ["db", 1, join(dir, "console-db.txt")],
      ["web/1", 50_000, join(dir, serialFileName("web/1"))],
    ],
  );
  assert.equal(serialFileName("web/1"), "console-web_1.txt");
  const text = readFileSync(join(dir, "console-web_1.txt"), "utf8").split("\n");
  assert.equal(text.length, 50_001);
  assert.match(text[0]!, /^ +\d+\.\d\d {2}line 0 bold$/);
  assert.match(text[49_999]!, /line 49999 bold$/);
  assert.equal(record.lines.length, 0, "serial lines are not log lines");
  record.closeFiles();
});

test("many spans: memory is bounded, the longest are kept (the slowest table stays right)", () => {
  const record = new RecordSink();
  const logger = new Logger([record]);
  const t0 = performance.now();
  for (let i = 0; i < 50_000; i++) logger.span({ machine: "m", label: `s${i}`, kind: "boot", start: t0, end: t0 + i });
  assert.ok(record.spans.length <= 20_000);
  assert.ok(record.spansDropped >= 30_000);
  assert.equal(Math.max(...record.spans.map((s) => s.seconds)), 49.999);
});

test("report.html: a small console is embedded as chunk scripts that give back every line; a large one is in chunk files", async () => {
  const { writeHtmlReport } = await import("../../runtime/report/html.js");
  const { runInNewContext } = await import("node:vm");
  const { readdirSync } = await import("node:fs");
  for (const [name, count] of [
    ["small", 2_000],
    ["large", 100_000],
  ] as const) {
    const out = mkdtempSync(join(dir, `${name}-`));
    const record = new RecordSink(out);
    const logger = new Logger([record]);
    for (let i = 0; i < count; i++) logger.serial("m", `line ${i} </script> "q" \u2028 é`);
    writeHtmlReport(join(out, "report.html"), { name, duration: 1, error: undefined, cases: [] }, record, out);
    record.closeFiles();
    const html = readFileSync(join(out, "report.html"), "utf8");
    const chunks = Number(/data-chunks="(\d+)"/.exec(html)?.[1]);
    const sources =
      name === "small"
        ? [...html.matchAll(/<script>(serialChunk\([\s\S]*?\);)<\/script>/g)].map((m) => m[1]!)
        : readdirSync(out)
            .filter((f) => f.endsWith(".js"))
            .sort((a, b) => Number(a.split(".")[1]) - Number(b.split(".")[1]))
            .map((f) => readFileSync(join(out, f), "utf8"));
    assert.equal(sources.length, chunks, `${name}: one script per chunk`);
    if (name === "small") assert.equal(chunks, 1);
    else assert.ok(chunks >= 3, `chunks: ${chunks}`);
    const got: string[][] = [];
    for (const source of sources)
      runInNewContext(source, { serialChunk: (_m: string, i: number, text: string) => (got[i] = text.replace(/\n$/, "").split("\n")) });
    const lines = got.flat();
    assert.equal(lines.length, count);
    assert.match(lines[0]!, /^ +\d+\.\d\d {2}line 0 <\/script> "q" \u2028 é$/);
    assert.match(lines[count - 1]!, new RegExp(`line ${count - 1} `));
  }
});
