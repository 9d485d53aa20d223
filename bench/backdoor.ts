// Backdoor benchmark, one run on one tiny guest under TCG:
//   - our succeed("true") vs nixpkgs' framing vs a bare round trip, sent
//     raw on the same shell (so only the framing differs);
//   - throughput of a 20 MB answer;
//   - latency from a condition becoming true to waitUntilSucceeds returning.
//
//   npm run bench        (or: node dist/bench/backdoor.js [calls])
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Driver } from "../runtime/driver.js";
import { Logger } from "../runtime/log/logger.js";
import { TerminalSink } from "../runtime/log/terminal.js";
import { killAllSync } from "../runtime/reaper.js";
import { buildGuest, writeStartScripts } from "../test/guests/start-scripts.js";

// A benchmark stopped by a signal must not leave its VMs running.
process.on("exit", killAllSync);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => process.exit(130));
import { median, ms, percentile } from "./stats.js";

const calls = Number(process.argv[2] ?? 200);

async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function sample(count: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(await time(fn));
  return out;
}

await buildGuest();
const dir = await mkdtemp(join(tmpdir(), "ntt-bench-"));
const scripts = await writeStartScripts(dir, [{ name: "machine", vlans: [] }]);
const logger = new Logger([new TerminalSink(process.stderr, { level: process.env.BENCH_LOG === "1" ? "info" : "error", isSerialOn: () => process.env.BENCH_LOG === "1" })]);
const driver = new Driver({ vms: [{ name: "machine", startScript: scripts.machine as string }], vlans: [], globalTimeout: 3600, outDir: dir, logger });
const machine = driver.machines.machine;
if (machine === undefined) throw new Error("no machine");

try {
  const boot = await time(() => machine.connect());
  console.log(`boot to backdoor shell: ${(boot / 1000).toFixed(2)} s`);

  const ours = await sample(calls, () => machine.succeed("true"));
  const nixpkgs = await sample(calls, async () => {
    await machine.rawShellExchange("timeout 900 bash -c 'set -euo pipefail; true' | (base64 -w 0; echo)\n", /\n$/);
    await machine.rawShellExchange("echo ${PIPESTATUS[0]}\n", /\d+\n$/);
  });
  const bare = await sample(calls, () => machine.rawShellExchange("echo\n", /\n$/));
  const row = (name: string, v: number[]): string => `${name.padEnd(44)} median ${ms(median(v)).padStart(10)}   p95 ${ms(percentile(v, 95)).padStart(10)}`;
  console.log(`\nper command, ${calls} calls each:`);
  console.log(row('succeed("true") (ours)', ours));
  console.log(row("nixpkgs framing (timeout … bash -c … | base64)", nixpkgs));
  console.log(row("bare round trip (echo)", bare));
  console.log(`ratio nixpkgs / ours: ${(median(nixpkgs) / median(ours)).toFixed(1)}x; ours / bare: ${(median(ours) / median(bare)).toFixed(0)}x`);

  const big = await sample(3, () => machine.execute("head -c 20000000 /dev/zero", { timeout: 600 }));
  console.log(`\n20 MB answer: median ${(median(big) / 1000).toFixed(2)} s = ${(20 / (median(big) / 1000)).toFixed(1)} MB/s`);

  // The moment the condition becomes true is taken from the serial console (the
  // job announces it there, read event-driven), so guest timing does not blur it.
  // The delays step through one polling period: a fixed delay would always hit
  // the same phase of the polling and measure one point, not the distribution.
  const latencies: number[] = [];
  for (let i = 0; i < 10; i++) {
    const delay = (3 + i * 0.021).toFixed(3);
    await machine.succeed(`rm -f /tmp/flag; (sleep ${delay}; touch /tmp/flag; echo flag-created-${i} > /dev/ttyS0) >/dev/null 2>&1 &`);
    let created = 0;
    let returned = 0;
    await Promise.all([
      machine.waitForConsoleText(`flag-created-${i}`, { timeout: 60 }).then(() => (created = performance.now())),
      machine.waitUntilSucceeds("test -e /tmp/flag", { timeout: 60 }).then(() => (returned = performance.now())),
    ]);
    latencies.push(returned - created);
  }
  console.log(`waitUntilSucceeds latency after the condition holds (10 runs, condition true after 3.00-3.19 s): median ${ms(median(latencies))}, max ${ms(Math.max(...latencies))} (nixpkgs: 1 s fixed sleep)`);
} finally {
  await driver.cleanup();
  logger.end();
  await rm(dir, { recursive: true, force: true });
}
