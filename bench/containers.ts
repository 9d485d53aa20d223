// Container vs VM, one run of one test with both on vlan 1: a systemd-nspawn
// container of the "container" guest and a tiny TCG VM.
//   - start → ready (container: systemd's "Startup finished"; VM: the backdoor shell);
//   - succeed("true"): median and p95 over N calls each;
//   - the ratios, and the machine's load while measuring.
// Needs root (nspawn) and creates links, so it re-runs itself inside a
// network namespace of its own (`unshare --net`).
//
//   node dist/bench/containers.js [calls]        (default 200)
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Driver } from "../runtime/driver/driver.js";
import { Logger } from "../runtime/log/logger.js";
import { TerminalSink } from "../runtime/log/terminal.js";
import { killAllSync } from "../runtime/host/reaper.js";
import { buildGuest, writeNspawnStartScripts, writeStartScripts } from "../test/guests/start-scripts.js";
import { median, ms, percentile } from "./stats.js";

if (process.env.NTT_BENCH_NETNS !== "1") {
  const r = spawnSync(
    "unshare",
    ["--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", process.execPath, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    {
      stdio: "inherit",
      env: { ...process.env, NTT_BENCH_NETNS: "1" },
    },
  );
  process.exit(r.status ?? 1);
}

process.on("exit", killAllSync);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => process.exit(130));

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

await buildGuest("tiny");
await buildGuest("container");
const dir = await mkdtemp(join(tmpdir(), "ntt-bench-containers-"));
const nodes = [{ name: "vm", vlans: [1] }];
const containers = [{ name: "c", vlans: [1] }];
const vmScripts = await writeStartScripts(dir, [...nodes, ...containers]);
const nspawn = await writeNspawnStartScripts(dir, containers, nodes);
const logger = new Logger([
  new TerminalSink(process.stderr, { level: process.env.BENCH_LOG === "1" ? "info" : "error", isSerialOn: () => process.env.BENCH_LOG === "1" }),
]);
const driver = new Driver({
  vms: [{ name: "vm", startScript: vmScripts.vm as string }],
  containers: [{ name: "c", startScript: nspawn.c as string }],
  vlans: [1],
  globalTimeout: 3600,
  outDir: dir,
  logger,
});
const { c, vm } = driver.machines;
if (c === undefined || vm === undefined) throw new Error("no machines");

try {
  await driver.setUp();
  const load = (): string =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(" ");
  console.log(`load average before: ${load()} (2 cores shared with other work)`);
  const containerReady = await time(() => c.connect());
  const containerCalls = await sample(calls, () => c.succeed("true"));
  console.log(`load average after the container: ${load()}`);
  const vmReady = await time(() => vm.connect());
  const vmCalls = await sample(calls, () => vm.succeed("true"));
  console.log(`load average after the VM: ${load()}`);
  await c.succeed("ping -c1 -W 5 vm");

  const row = (name: string, v: number[]): string => `${name.padEnd(32)} median ${ms(median(v)).padStart(10)}   p95 ${ms(percentile(v, 95)).padStart(10)}`;
  console.log(
    `\nstart → ready:  container ${(containerReady / 1000).toFixed(2)} s   VM (TCG) ${(vmReady / 1000).toFixed(2)} s   ratio VM/container ${(vmReady / containerReady).toFixed(1)}x`,
  );
  console.log(`\nsucceed("true"), ${calls} calls each:`);
  console.log(row("container (nsenter)", containerCalls));
  console.log(row("VM (backdoor shell, TCG)", vmCalls));
  console.log(
    `ratio VM/container: median ${(median(vmCalls) / median(containerCalls)).toFixed(1)}x, p95 ${(percentile(vmCalls, 95) / percentile(containerCalls, 95)).toFixed(1)}x`,
  );
} finally {
  await driver.cleanup();
  await rm(dir, { recursive: true, force: true });
}
