// The screen of a tiny guest: its VGA text console. Screenshots, keys typed
// through QEMU's monitor, OCR with tesseract, virtual console text.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, test } from "node:test";
import { buildGuest } from "../guests/start-scripts.js";
import { runDriver, survivors, type Run } from "./harness.js";

const script = String.raw`
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
const results = {};
// A reader on tty1 makes the console echo what is typed, as a login prompt would.
await machine.succeed("(exec </dev/tty1 >/dev/tty1 2>&1; clear; sleep 600) >/dev/null 2>&1 &");

await subtest("keys and OCR", async () => {
  await machine.sendChars("Hello OCR 42!\n");
  let t = performance.now();
  await machine.waitForText(/Hello OCR 42/, { timeout: 120 });
  results.waitForText = (performance.now() - t) / 1000;
  t = performance.now();
  const text = await machine.getScreenText();
  results.ocrRaw = (performance.now() - t) / 1000;
  assert.match(text, /Hello OCR 42/);
  t = performance.now();
  const variants = await machine.getScreenTextVariants();
  results.ocrVariants = (performance.now() - t) / 1000;
  assert.equal(variants.length, 3);
  assert.ok(variants.some((v) => /OCR/.test(v)), JSON.stringify(variants));
});

await subtest("virtual console text", async () => {
  await machine.waitUntilTtyMatches(1, /Hello OCR 42!/, { timeout: 30 });
  assert.match(await machine.getTtyText(1), /Hello OCR 42!/);
  await machine.sendKey("ctrl-u");
});

await subtest("screenshots", async () => {
  const path = await machine.screenshot("console");
  assert.equal(path, join(process.env.OUT_DIR, "console.png"));
  results.shot = path;
});

writeFileSync(join(process.env.OUT_DIR, "screen.json"), JSON.stringify(results));
`;

let run: Run;

before(async () => {
  await buildGuest();
  const { mkdtemp } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const out = await mkdtemp(join(tmpdir(), "ntt-screen-"));
  run = await runDriver(script, { args: ["-o", out], env: { OUT_DIR: out }, vgaText: true });
  (run as Run & { out: string }).out = out;
});

test("typed text is read back by OCR and from the virtual console", () => {
  assert.equal(run.code, 0, run.output.slice(-4000));
});

test("a screenshot is a PNG in the output directory, shown in report.html", async (t) => {
  const out = (run as Run & { out: string }).out;
  const results = JSON.parse(await readFile(join(out, "screen.json"), "utf8")) as Record<string, number | string>;
  const png = await readFile(results.shot as string);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  assert.ok(width >= 640 && height >= 350, `${width}x${height}`);
  const html = await readFile(join(out, "report.html"), "utf8");
  assert.match(html, /<img class="screenshot" alt="console\.png" src="data:image\/png;base64,iVBORw0KGgo/);
  t.diagnostic(
    `OCR: raw ${Number(results.ocrRaw).toFixed(2)} s, with variants ${Number(results.ocrVariants).toFixed(2)} s; waitForText ${Number(results.waitForText).toFixed(2)} s after typing`,
  );
});

test("no QEMU is left", async () => {
  assert.deepEqual(await survivors(run.qemuPids), []);
});
