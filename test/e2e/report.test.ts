// The reports of a failed run on two machines working concurrently: JUnit XML
// parsed back, and report.html opened in headless Chromium (Debian's), where
// the failure section, an inlined screenshot and the timeline (a lane per
// machine, overlapping spans, subtest bands, the slowest commands) must render.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { before, test } from "node:test";
import { chromium } from "playwright-core";
import { convert } from "xmlbuilder2";
import { buildGuest } from "../guests/start-scripts.js";
import { runDriver, survivors, type Run } from "./harness.js";

const CHROMIUM = "/usr/bin/chromium";

const script = [
  'await subtest("passes", async () => {',
  "  await Promise.all([",
  '    machine.succeed("sleep 2; echo report-check > /dev/tty1"),',
  '    peer.succeed("sleep 3; echo peer-side"),',
  "  ]);",
  '  await machine.screenshot("evidence");',
  "});",
  'await subtest("fails", async () => {',
  '  await machine.succeed("echo about to fail; exit 7");',
  "});",
].join("\n");

let run: Run;

before(async () => {
  await buildGuest();
  run = await runDriver(script, {
    nodes: [
      { name: "machine", vlans: [] },
      { name: "peer", vlans: [] },
    ],
    args: ["--junit-xml", "junit.xml", "--test-name", "report-demo"],
    limit: 600,
  });
});

test("the run fails with exit 1 and leaves no QEMU", async () => {
  assert.equal(run.code, 1, run.output.slice(-3000));
  assert.deepEqual(await survivors(run.qemuPids), []);
});

interface Case {
  "@name": string;
  "@time": string;
  failure?: { "@message": string; "@type": string; "#": string };
  "system-out"?: string;
}

test("JUnit: one case per subtest with real times, the failing one with its message and output", async () => {
  const doc = convert(await readFile(join(run.outDir, "junit.xml"), "utf8"), { format: "object" }) as unknown as {
    testsuites: { "@tests": string; "@failures": string; testsuite: { "@name": string; testcase: Case[]; "system-out": string } };
  };
  const suites = doc.testsuites;
  assert.equal(suites["@tests"], "2");
  assert.equal(suites["@failures"], "1");
  assert.equal(suites.testsuite["@name"], "report-demo");
  const [passes, fails] = suites.testsuite.testcase;
  assert.equal(passes?.["@name"], "passes");
  assert.equal(passes?.failure, undefined);
  assert.ok(Number(passes?.["@time"]) > 1, "the first case includes the boot");
  assert.equal(fails?.["@name"], "fails");
  assert.equal(fails?.failure?.["@type"], "CommandFailedError");
  assert.match(fails?.failure?.["@message"] ?? "", /machine: command `echo about to fail; exit 7` failed \(exit code 7\)/);
  assert.match(fails?.failure?.["#"] ?? "", /about to fail/);
  assert.match(fails?.["system-out"] ?? "", /must succeed: echo about to fail/);
  assert.match(suites.testsuite["system-out"], /subtest: passes/);
});

test("report.html renders in Chromium: the failure first, the screenshot loaded", async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith("file:") && !r.url().startsWith("data:")) requests.push(r.url());
    });
    await page.goto(pathToFileURL(join(run.outDir, "report.html")).href);
    assert.equal(await page.title(), "report-demo: failed");
    const failure = page.locator("#failure");
    assert.ok(await failure.isVisible());
    assert.equal(await failure.locator("dd.machine").textContent(), "machine");
    assert.match((await failure.textContent()) ?? "", /echo about to fail; exit 7/);
    const firstSection = await page.locator("section").first().getAttribute("id");
    assert.equal(firstSection, "failure", "the failure comes first");
    const img = page.locator("img.screenshot");
    assert.equal(await img.count(), 1);
    const size = await img.evaluate((el) => {
      const image = el as unknown as { complete: boolean; naturalWidth: number };
      return { complete: image.complete, width: image.naturalWidth };
    });
    assert.ok(size.complete && size.width >= 640, `image loaded: ${JSON.stringify(size)}`);
    assert.equal(await page.locator("#subtests li.fail .name").textContent(), "fails");
    await page.fill("#search", "report-check");
    assert.equal(await page.locator("details.serial[open]").count(), 0, "the echo went to tty1, not the serial console");
    await page.fill("#search", "tiny-init");
    assert.equal(await page.locator("details.serial[open]").count(), 2, "both consoles are embedded and filtered");
    assert.match((await page.locator('details.serial[data-machine="peer"] pre').textContent()) ?? "", /tiny-init/);
    assert.deepEqual(requests, [], "the report needs no network");
  } finally {
    await browser.close();
  }
});

interface Bar {
  title: string;
  start: number;
  seconds: number;
  box: { x: number; width: number };
}

test("report.html timeline: a lane per machine with its boot and commands; concurrent commands overlap; subtest bands; slowest commands", async () => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await page.goto(pathToFileURL(join(run.outDir, "report.html")).href);
    const lanes = page.locator("#timeline .lane[data-machine]");
    assert.deepEqual(await lanes.evaluateAll((els) => els.map((e) => (e as unknown as { dataset: { machine: string } }).dataset.machine)), ["machine", "peer"]);
    const bars = async (machine: string, selector: string): Promise<Bar[]> => {
      const spans = page.locator(`#timeline .lane[data-machine="${machine}"] ${selector}`);
      const out: Bar[] = [];
      for (let i = 0; i < (await spans.count()); i++) {
        const s = spans.nth(i);
        const box = await s.boundingBox();
        out.push({
          title: (await s.getAttribute("title")) ?? "",
          start: Number(await s.getAttribute("data-start")),
          seconds: Number(await s.getAttribute("data-seconds")),
          box: { x: box?.x ?? 0, width: box?.width ?? 0 },
        });
      }
      return out;
    };
    for (const m of ["machine", "peer"]) {
      const [boot, ...more] = await bars(m, ".span.boot");
      assert.equal(more.length, 0, `${m}: one boot`);
      assert.ok(boot !== undefined && boot.seconds > 0.5, `${m}: the boot is drawn with its length (${JSON.stringify(boot)})`);
      assert.match(boot.title, new RegExp(`^${m}: boot — `));
    }
    const [mine] = (await bars("machine", ".span.cmd")).filter((b) => /sleep 2/.test(b.title));
    const [theirs] = (await bars("peer", ".span.cmd")).filter((b) => /sleep 3/.test(b.title));
    assert.ok(mine !== undefined && theirs !== undefined, "each machine's command is a span in its own lane");
    assert.match(mine.title, /^machine: must succeed: sleep 2; echo report-check > \/dev\/tty1 — \d+\.\d+ s/);
    assert.ok(mine.seconds >= 2 && theirs.seconds >= 3, `the spans last as long as the commands: ${mine.seconds}, ${theirs.seconds}`);
    // They ran at the same time: their times overlap, and so do their bars on the page.
    assert.ok(Math.max(mine.start, theirs.start) < Math.min(mine.start + mine.seconds, theirs.start + theirs.seconds), "the commands overlap in time");
    assert.ok(Math.max(mine.box.x, theirs.box.x) < Math.min(mine.box.x + mine.box.width, theirs.box.x + theirs.box.width), "the bars overlap on the page");
    const [failed] = (await bars("machine", ".span.cmd.fail")).filter((b) => /exit 7/.test(b.title));
    assert.ok(failed !== undefined, "the failed command is marked");
    // Subtests: a band across the lanes each, the failed one marked.
    const bands = page.locator("#timeline .bands .band");
    assert.equal(await bands.count(), 2);
    assert.equal(await page.locator("#timeline .bands .band.fail").count(), 1);
    const band = await bands.first().boundingBox();
    const laneBoxes = await Promise.all([lanes.first().boundingBox(), lanes.last().boundingBox()]);
    assert.ok(band !== null && laneBoxes[0] !== null && laneBoxes[1] !== null);
    assert.ok(band.y <= laneBoxes[0].y && band.y + band.height >= laneBoxes[1].y + laneBoxes[1].height, "the band spans every lane");
    // The slowest commands, slowest first, at most ten.
    const rows = page.locator("#slowest tbody tr");
    const count = await rows.count();
    assert.ok(count >= 3 && count <= 10, `rows: ${count}`);
    const times = await rows.locator("td:first-child").allTextContents();
    const seconds = times.map((t) => parseFloat(t));
    assert.deepEqual(
      seconds,
      [...seconds].sort((a, b) => b - a),
      "sorted, slowest first",
    );
    const commands = await rows.locator("td.command").allTextContents();
    assert.ok(
      commands.some((c) => /sleep 3; echo peer-side/.test(c)),
      commands.join(" | "),
    );
    assert.equal(await page.locator("#slowest tr.fail td.command").first().textContent(), "must succeed: echo about to fail; exit 7");
  } finally {
    await browser.close();
  }
});
