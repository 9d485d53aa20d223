// Scratch probe (not committed): raw costs of shell constructs on one guest.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Driver } from "../runtime/driver.js";
import { Logger } from "../runtime/log/logger.js";
import { TerminalSink } from "../runtime/log/terminal.js";
import { killAllSync } from "../runtime/reaper.js";
import { writeStartScripts } from "../test/guests/start-scripts.js";
import { median } from "./stats.js";
process.on("exit", killAllSync);
const aslr = process.env.ASLR !== "0";
const dir = await mkdtemp(join(tmpdir(), "ntt-probe-"));
const scripts = await writeStartScripts(dir, [{ name: "machine", vlans: [] }], { aslr });
const logger = new Logger([new TerminalSink(process.stderr, { level: "error", isSerialOn: () => false })]);
const driver = new Driver({ vms: [{ name: "machine", startScript: scripts.machine as string }], vlans: [], globalTimeout: 3600, outDir: dir, logger });
const m = driver.machines.machine!;
await m.connect();
console.log(await m.succeed("cat /proc/cmdline; cat /proc/sys/kernel/randomize_va_space"));
await m.succeed("mkfifo /dev/shm/.f || true");
const probes: Record<string, string> = {
  bare: "echo",
  subshell: "( true ) >/dev/shm/x; echo $?",
  bgwait: "( true ) >/dev/shm/x & wait $!; echo $?",
  pipe_cat: "( true ) | cat >/dev/null; echo",
  base64: "base64 -w0 </dev/null; echo",
  true_exec: "/bin/true; echo",
  forkfork: "( true ) & ( true ) >/dev/shm/x; wait; echo",
  readt: "read -t 0.001 <> /dev/shm/.f; echo",
};
const res: Record<string, number[]> = {};
for (let i = 0; i < 40; i++) for (const [k, v] of Object.entries(probes)) {
  const t = performance.now();
  await m.rawShellExchange(v + "\n", /\n$/);
  (res[k] ??= []).push(performance.now() - t);
}
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(12), median(v).toFixed(1));
const t = performance.now(); for (let i = 0; i < 40; i++) await m.succeed("true"); console.log("succeed", ((performance.now() - t) / 40).toFixed(1));
await driver.cleanup(); logger.end();
