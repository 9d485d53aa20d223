// report.html with a large log (300k serial lines, as an hour of a chatty
// guest): it must open in headless Chromium (Debian's) within 2 s, render a
// console a page at a time, filter all of it, and link the full text next to it.
// No VM: the report is written from a RecordSink fed the lines directly.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, test } from "node:test";
import { chromium } from "playwright-core";
import { Logger } from "../../runtime/log/logger.js";
import { RecordSink } from "../../runtime/log/record.js";
import { writeHtmlReport } from "../../runtime/report/html.js";

const CHROMIUM = "/usr/bin/chromium";
const LINES = 300_000;
const dir = mkdtempSync(join(tmpdir(), "ntt-report-large-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("a report with 300k serial lines opens in Chromium within 2 s; consoles render on demand and filter everything", async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium`);
  const record = new RecordSink(dir);
  const logger = new Logger([record]);
  const began = performance.now();
  logger.span({ machine: "machine", label: "boot", kind: "boot", start: began, end: began + 5 });
  await logger.nested("must succeed: flood", { machine: "machine" }, async () => {
    for (let i = 0; i < LINES; i++) logger.serial("machine", `[ ${(i / 1000).toFixed(3)}] flood line ${i} <tag> & "quotes" ${"x".repeat(20)}`);
  });
  logger.end();
  const path = join(dir, "report.html");
  writeHtmlReport(path, { name: "large", duration: (performance.now() - began) / 1000, error: undefined, cases: [] }, record, dir);
  record.closeFiles();
  const file = join(dir, "console-machine.txt");
  assert.equal(readFileSync(file, "utf8").split("\n").length - 1, LINES, "the console file next to the report has every line");
  console.log(`report.html: ${(statSync(path).size / 1e6).toFixed(1)} MB for ${LINES} lines`);

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    const page = await browser.newPage();
    const begin = performance.now();
    await page.goto(pathToFileURL(path).href, { waitUntil: "load" });
    // Interactive: the filter answers.
    await page.locator("#search").waitFor();
    const openMs = performance.now() - begin;
    console.log(`report open (navigation to load event, headless Chromium): ${openMs.toFixed(0)} ms`);
    assert.ok(openMs < 2000, `the report took ${openMs.toFixed(0)} ms to open`);

    const details = page.locator("details.serial");
    assert.equal(await details.count(), 1);
    assert.match((await details.locator("summary").textContent()) ?? "", /300000 lines/);
    assert.equal(await details.locator("summary a").getAttribute("href"), "console-machine.txt");
    assert.equal(await details.getAttribute("data-src"), "console-machine", "a large console is not inlined");
    assert.ok(Number(await details.getAttribute("data-chunks")) > 10, "it is cut in chunks");
    assert.equal(await details.locator("pre").textContent(), "", "nothing is rendered before the console is opened");

    let t = performance.now();
    await details.locator("summary").click();
    // The console is loaded from console-machine.js next to the page, on demand.
    await page.waitForFunction('document.querySelector("details.serial pre").textContent !== ""');
    const shown = ((await details.locator("pre").textContent()) ?? "").split("\n");
    console.log(`open the console (first page): ${(performance.now() - t).toFixed(0)} ms`);
    assert.equal(shown.length, 2000, "a page of lines");
    assert.match(shown[0] ?? "", /flood line 0 <tag> & "quotes"/);
    assert.match((await details.locator(".shown").textContent()) ?? "", /300000 lines, showing the first 2000/);
    await details.locator(".more").click();
    await page.waitForFunction('document.querySelector("details.serial pre").textContent.split("\\n").length === 12000');
    assert.equal(((await details.locator("pre").textContent()) ?? "").split("\n").length, 12000);

    t = performance.now();
    await page.fill("#search", "/flood line 29999\\d /");
    await page.waitForFunction('/matching/.test(document.querySelector("details.serial .shown").textContent)');
    const found = ((await details.locator("pre").textContent()) ?? "").split("\n");
    console.log(`filter 300k lines with a regex: ${(performance.now() - t).toFixed(0)} ms`);
    assert.deepEqual(
      found.map((l) => /flood line (\d+)/.exec(l)?.[1]),
      ["299990", "299991", "299992", "299993", "299994", "299995", "299996", "299997", "299998", "299999"],
    );
    assert.match((await details.locator(".shown").textContent()) ?? "", /^10 matching of 300000 lines$/);
    await page.fill("#search", "no such text anywhere");
    assert.equal(await page.locator("details.serial[open]").count(), 0);
  } finally {
    await browser.close();
  }
});
