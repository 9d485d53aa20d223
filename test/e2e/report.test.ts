// The reports of a failed run: JUnit XML parsed back, and report.html opened
// in headless Chromium (Debian's), where the failure section and an inlined
// screenshot must render.
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
  '  await machine.succeed("echo report-check > /dev/tty1");',
  '  await machine.screenshot("evidence");',
  "});",
  'await subtest("fails", async () => {',
  '  await machine.succeed("echo about to fail; exit 7");',
  "});",
].join("\n");

let run: Run;

before(async () => {
  await buildGuest();
  run = await runDriver(script, { args: ["--junit-xml", "junit.xml", "--test-name", "report-demo"] });
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
    assert.equal(await page.locator("#timeline li.fail .name").textContent(), "fails");
    await page.fill("#search", "report-check");
    assert.equal(await page.locator("details.serial[open]").count(), 0, "the echo went to tty1, not the serial console");
    await page.fill("#search", "tiny-init");
    assert.equal(await page.locator("details.serial[open]").count(), 1);
    assert.deepEqual(requests, [], "the report needs no network");
  } finally {
    await browser.close();
  }
});
