// Two-node benchmark, one run: "start both, wait for both shells, ping each
// way", once with the machines waited for one after the other, once
// concurrently (Promise.all), on the same two tiny guests (vlan 1).
//
//   node dist/bench/concurrency.js
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Driver } from "../runtime/driver/driver.js";
import { Logger } from "../runtime/log/logger.js";
import { TerminalSink } from "../runtime/log/terminal.js";
import type { Machine } from "../runtime/machine/index.js";
import { killAllSync } from "../runtime/host/reaper.js";
import { buildGuest, writeStartScripts } from "../test/guests/start-scripts.js";

// A benchmark stopped by a signal must not leave its VMs running.
process.on("exit", killAllSync);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => process.exit(130));

await buildGuest();
const dir = await mkdtemp(join(tmpdir(), "ntt-bench-"));
const scripts = await writeStartScripts(dir, [
  { name: "a", vlans: [1] },
  { name: "b", vlans: [1] },
]);
const logger = new Logger([new TerminalSink(process.stderr, { level: "error", isSerialOn: () => false })]);
const driver = new Driver({
  vms: Object.entries(scripts).map(([name, startScript]) => ({ name, startScript })),
  vlans: [1],
  globalTimeout: 3600,
  outDir: dir,
  logger,
});
const { a, b } = driver.machines as Record<"a" | "b", Machine>;

async function seconds(fn: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

try {
  await driver.setUp();
  const sequential = await seconds(async () => {
    await a.start();
    await a.connect();
    await b.start();
    await b.connect();
    await a.succeed("ping -c1 -W 5 b");
    await b.succeed("ping -c1 -W 5 a");
  });
  await Promise.all([a.shutdown(), b.shutdown()]);
  const concurrent = await seconds(async () => {
    await driver.startAll();
    await Promise.all([a.connect(), b.connect()]);
    await Promise.all([a.succeed("ping -c1 -W 5 b"), b.succeed("ping -c1 -W 5 a")]);
  });
  console.log(`start both, wait for both shells, ping each way (tiny guests, TCG, ${process.platform}):`);
  console.log(`  one after the other: ${sequential.toFixed(2)} s`);
  console.log(`  concurrently:        ${concurrent.toFixed(2)} s`);
  console.log(`  ratio sequential / concurrent: ${(sequential / concurrent).toFixed(2)}x`);
} finally {
  await driver.cleanup();
  logger.end();
  await rm(dir, { recursive: true, force: true });
}
