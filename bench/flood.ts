// Serial flood benchmark: a real tiny guest writes to its serial console as
// fast as it can (`yes … > /dev/ttyS0`) for N seconds while the test script
// waits. The console is back-pressured by its reader, so the lines that reach
// the XML log are the driver's throughput. Measured from outside the driver
// process (the real CLI): its CPU time during the flood (/proc/<pid>/stat) and
// its peak RSS (VmHWM in /proc/<pid>/status), plus the machine's load.
//
//   npm run bench:flood            (60 s)
//   node dist/bench/flood.js [seconds]
//   FLOOD_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node dist/bench/flood.js 20   (profile the driver)
import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { buildGuest, writeStartScripts } from "../test/guests/start-scripts.js";
import { CLI } from "../test/e2e/harness.js";

const seconds = Number(process.argv[2] ?? 60);
/** FLOOD_IDLE=1: the same run without the flood, for the driver's own baseline. */
const idle = process.env.FLOOD_IDLE === "1";
const LINE = "flood: the quick brown fox jumps over the lazy dog 0123456789";
const TICKS = 100; // USER_HZ on Linux

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the command.
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

async function peakRssMB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

async function loadAverage(): Promise<string> {
  return (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ");
}

/** Counts the flood lines in the XML log without reading it whole. */
async function countFloodLines(path: string): Promise<number> {
  let count = 0;
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of rl) if (line.includes('type="serial"') && line.includes(LINE)) count++;
  return count;
}

await buildGuest();
const dir = await mkdtemp(join(tmpdir(), "ntt-flood-"));
try {
  const scripts = await writeStartScripts(dir, [{ name: "machine", vlans: [] }]);
  const outDir = join(dir, "out");
  const script = join(dir, "flood.mjs");
  await writeFile(
    script,
    [
      'await machine.succeed("true");',
      'log("flood: begins");',
      // In the background, as a chatty service would; the script just waits.
      `await machine.succeed(${JSON.stringify(`(${idle ? "sleep 100000" : `yes '${LINE}'`} > /dev/ttyS0 2>/dev/null </dev/null & echo $! > /tmp/flood.pid)`)});`,
      `await machine.sleep(${seconds});`,
      'await machine.succeed("kill $(cat /tmp/flood.pid)");',
      'log("flood: ends");',
    ].join("\n"),
  );
  const loadBefore = await loadAverage();
  const nodeFlags = process.env.FLOOD_NODE_FLAGS?.split(" ").filter((f) => f !== "") ?? [];
  const child = spawn(process.execPath, [...nodeFlags, CLI, "--start-scripts", scripts.machine as string, "-o", outDir, script], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const pid = child.pid as number;
  // Stopped by a signal: the driver stops its VM on SIGTERM.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => child.kill("SIGTERM"));
  let began: { cpu: number; at: number } | undefined;
  let ended: { cpu: number; at: number } | undefined;
  let peak = 0;
  /** The start script's pid: it execs QEMU, whose CPU shows whether the guest or the driver was the limit. */
  let qemuPid: number | undefined;
  let qemuCpu = NaN;
  let peakAtFloodEnd = NaN;
  let tail = "";
  // VmHWM only grows; sample it while the driver lives (the last sample before its exit is the peak).
  const sampler = setInterval(() => {
    peakRssMB(pid).then(
      (mb) => (peak = Math.max(peak, mb)),
      () => undefined,
    );
  }, 250);
  // Serial lines go to stderr too (as in nixpkgs); only the markers matter here.
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    tail = (tail + chunk).slice(-4000);
    qemuPid ??= Number(/QEMU running \(pid (\d+)\)/.exec(tail)?.[1] ?? NaN) || undefined;
    if (began === undefined && tail.includes("flood: begins")) {
      const at = performance.now();
      void cpuSeconds(pid).then((cpu) => (began = { cpu, at }));
      if (qemuPid !== undefined)
        void cpuSeconds(qemuPid).then(
          (cpu) => (qemuCpu = -cpu),
          () => undefined,
        );
    }
    if (ended === undefined && tail.includes("flood: ends")) {
      const at = performance.now();
      void cpuSeconds(pid).then((cpu) => (ended = { cpu, at }));
      if (qemuPid !== undefined)
        void cpuSeconds(qemuPid).then(
          (cpu) => (qemuCpu += cpu),
          () => undefined,
        );
      void peakRssMB(pid).then(
        (mb) => {
          peak = Math.max(peak, mb);
          peakAtFloodEnd = mb;
        },
        () => undefined,
      );
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  clearInterval(sampler);
  if (code !== 0 || began === undefined || ended === undefined) {
    throw new Error(`the driver failed (exit ${code}); last output:\n${tail}`);
  }
  const lines = await countFloodLines(join(outDir, "log.xml"));
  const wall = (ended.at - began.at) / 1000;
  const cpu = ended.cpu - began.cpu;
  const xmlMB = (await stat(join(outDir, "log.xml"))).size / 1e6;
  const reportMB = (await stat(join(outDir, "report.html"))).size / 1e6;
  const perLine = (cpu / Math.max(lines, 1)) * 1e6;
  if (idle) console.log(`IDLE baseline (no flood): driver CPU ${cpu.toFixed(2)} s over ${wall.toFixed(1)} s, peak RSS ${peak.toFixed(0)} MB`);
  console.log(`serial flood, ${seconds} s on the tiny guest (TCG), the driver CLI measured from outside:`);
  console.log(`  lines in the XML log   ${lines}  (${Math.round(lines / wall)} lines/s over ${wall.toFixed(1)} s)`);
  console.log(`  driver CPU             ${cpu.toFixed(2)} s  (${perLine.toFixed(1)} µs per line, ${((100 * cpu) / wall).toFixed(0)}% of a core)`);
  console.log(
    `  QEMU CPU (the guest)    ${qemuCpu.toFixed(2)} s  (${((100 * qemuCpu) / wall).toFixed(0)}% of a core: the guest's share of a busy machine bounds the lines/s)`,
  );
  console.log(`  driver peak RSS        ${peak.toFixed(0)} MB (VmHWM; ${peakAtFloodEnd.toFixed(0)} MB when the flood ended, the rest is the reports)`);
  console.log(`  log.xml / report.html  ${xmlMB.toFixed(1)} MB / ${reportMB.toFixed(2)} MB`);
  console.log(
    `  load average           before ${loadBefore}, after ${await loadAverage()} (${(await readFile("/proc/cpuinfo", "utf8")).match(/^processor/gm)?.length} CPUs)`,
  );
  // Issue 16's measurement of nixpkgs' 2022 Python driver on this class of machine (not re-measured in this run).
  const python = { lines: 323_436, cpu: 27.5, rss: 71 };
  console.log(
    `  vs Python driver (issue 16, 60 s): ${(lines / wall / (python.lines / 60)).toFixed(2)}× its lines/s, ` +
      `${(perLine / ((python.cpu / python.lines) * 1e6)).toFixed(2)}× its CPU per line, ${(peak / python.rss).toFixed(2)}× its peak RSS`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
