// A guest flooding its serial console (issue 16), on the real tiny guest:
// every line reaches the XML log exactly once, the driver's peak RSS
// (VmHWM, read from outside) stays under the bound, and the log parses
// after the driver is killed with SIGKILL in the middle of a flood.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, test } from "node:test";
import { convert } from "xmlbuilder2";
import { buildGuest } from "../guests/start-scripts.js";
import { assertWellFormed, prepare, runCli, survivors } from "./harness.js";

const LINES = 60_000;
const RSS_BOUND_MB = 150;

async function peakRssMB(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0; // it has exited
  }
}

/** The numbers of the flood lines in the log, in file order, and the log parsed by a full XML parser. */
function floodNumbers(xml: string): number[] {
  assertWellFormed(xml);
  convert(xml, { format: "object" }); // throws on anything a real parser rejects
  return [...xml.matchAll(/<line machine="machine" type="serial">flood (\d+) end<\/line>/g)].map((m) => Number(m[1]));
}

before(async () => {
  await buildGuest();
});

test(`${LINES} serial lines in a burst: each in log.xml exactly once, in order; peak RSS under ${RSS_BOUND_MB} MB`, async () => {
  const { dir, scripts, scriptPath } = await prepare(
    [
      'await machine.succeed("true");',
      `await machine.succeed("seq -f 'flood %.0f end' 1 ${LINES} > /dev/ttyS0");`,
      // The last lines may still be on their way from QEMU when the command returns.
      `await machine.waitForConsoleText("flood ${LINES} end");`,
    ].join("\n"),
  );
  const outDir = join(dir, "out");
  let pid: number | undefined;
  let peak = 0;
  const sampler = setInterval(() => {
    if (pid !== undefined) void peakRssMB(pid).then((mb) => (peak = Math.max(peak, mb)));
  }, 200);
  const began = performance.now();
  const run = await runCli(["--start-scripts", ...scripts, "-o", outDir, scriptPath], {
    cwd: dir,
    limit: 600,
    onOutput: (_text, child) => {
      pid ??= child.pid;
      // VmHWM only grows: the last sample before the exit is the peak.
      if (_text.endsWith(`flood ${LINES} end\n`)) void peakRssMB(child.pid as number).then((mb) => (peak = Math.max(peak, mb)));
    },
  });
  clearInterval(sampler);
  const qemuPids = [...run.output.matchAll(/QEMU running \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  assert.equal(run.code, 0, run.output.slice(-3000));
  assert.deepEqual(await survivors(qemuPids), []);
  const numbers = floodNumbers(await readFile(join(outDir, "log.xml"), "utf8"));
  assert.equal(numbers.length, LINES, "every line once");
  for (let i = 0; i < LINES; i++) if (numbers[i] !== i + 1) assert.fail(`line ${i + 1} of the flood: found ${numbers[i]}`);
  console.log(`${LINES} lines, run ${((performance.now() - began) / 1000).toFixed(1)} s, driver peak RSS ${peak.toFixed(0)} MB`);
  assert.ok(peak > 20, `RSS was sampled (${peak} MB)`);
  assert.ok(peak < RSS_BOUND_MB, `peak RSS ${peak.toFixed(0)} MB`);
  // The console file next to the report has every line too.
  const consoleText = await readFile(join(outDir, "console-machine.txt"), "utf8");
  assert.equal(consoleText.match(/ flood \d+ end$/gm)?.length, LINES);
});

test("SIGKILL in the middle of a flood: log.xml still parses, and holds a gapless prefix of the flood, each line once", async () => {
  const { dir, scripts, scriptPath } = await prepare(
    ['await machine.succeed("true");', `await machine.succeed("seq -f 'flood %.0f end' 1 100000000 > /dev/ttyS0", { timeout: 600 });`].join("\n"),
  );
  const outDir = join(dir, "out");
  let killAt: number | undefined;
  let killed = false;
  const run = await runCli(["--start-scripts", ...scripts, "-o", outDir, scriptPath], {
    cwd: dir,
    limit: 600,
    onOutput: (text, child) => {
      // Once the flood runs, kill at an arbitrary moment within the next two seconds.
      if (killAt === undefined && /flood 20000 end/.test(text.slice(-20000))) {
        killAt = Math.random() * 2000;
        setTimeout(() => {
          killed = true;
          child.kill("SIGKILL");
        }, killAt);
      }
    },
  });
  const qemuPids = [...run.output.matchAll(/QEMU running \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  // The driver could not clean up: its QEMU is ours to end.
  for (const p of qemuPids) {
    try {
      process.kill(-p, "SIGKILL");
    } catch {
      // gone already
    }
  }
  assert.ok(killed, run.output.slice(-2000));
  assert.equal(run.signal, "SIGKILL");
  const numbers = floodNumbers(await readFile(join(outDir, "log.xml"), "utf8"));
  console.log(`killed ${killAt?.toFixed(0)} ms after line 20000 was printed; ${numbers.length} flood lines in log.xml`);
  assert.ok(numbers.length >= 10_000, `most lines printed before the kill are in the log (${numbers.length})`);
  for (let i = 0; i < numbers.length; i++) if (numbers[i] !== i + 1) assert.fail(`line ${i + 1} of the flood: found ${numbers[i]}`);
  for (let t = 0; t < 50 && (await survivors(qemuPids)).length > 0; t++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(await survivors(qemuPids), []);
});
