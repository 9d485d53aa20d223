// Fault injection through the real CLI: what a user sees when QEMU dies, the
// guest panics, a command never ends, the test is interrupted, a start script
// or a host tool is broken, an output is huge, a path is long. Each case
// checks the message (machine + what failed), the exit status, the XML log
// and that nothing of the run is left running.
//
// Boots are shared where honest: the command cases (never-ending command,
// background job, 100 MB output) run as subtests of one script on one VM,
// each step recording its own result so that every assertion stands alone.
// The driver's own paths that need no real guest (the global timeout, an
// exception in a subtest) are in the fast tier (unit/driver-fake.test.ts).
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { buildGuest, writeStartScripts, type GuestNode } from "../guests/start-scripts.js";
import { CLI, assertWellFormed, prepare, runCli, survivors } from "./harness.js";

// ---------------------------------------------------------------------------
// Helpers

interface FaultRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  dir: string;
  outDir: string;
  /** The driver's TMPDIR: its state root (nixos-test-*) goes here, so leftovers are findable. */
  tmp: string;
  qemuPids: number[];
  vdePids: number[];
  /** Milliseconds from spawning the CLI to its exit. */
  ms: number;
  /** performance.now() when the CLI exited. */
  endedAt: number;
  xml(): Promise<string>;
}

interface FaultOptions {
  nodes?: GuestNode[];
  /** Start scripts to pass instead of generating them for `nodes`. */
  startScripts?: string[];
  args?: string[];
  env?: Record<string, string>;
  onOutput?: (text: string, child: ChildProcess) => void;
  /** Seconds before the CLI is killed by PID (a hanging driver must not hang the suite). */
  limit: number;
}

const qemuPidsOf = (output: string): number[] => [...output.matchAll(/QEMU running \(pid (\d+)\)/g)].map((m) => Number(m[1]));
const vdePidsOf = (output: string): number[] => [...output.matchAll(/vlan\d+: vde_switch running \(pid (\d+)/g)].map((m) => Number(m[1]));

/**
 * Like the harness's runDriver, with TMPDIR pointed into the run's directory
 * (so every process of the run has its cwd or arguments there) and own start
 * scripts allowed.
 */
async function runFault(script: string, options: FaultOptions): Promise<FaultRun> {
  const { dir, scripts, scriptPath } = await prepare(script, options.startScripts ? [] : options.nodes);
  const outDir = join(dir, "out");
  const tmp = join(dir, "tmp");
  const startScripts = options.startScripts ?? scripts;
  const began = performance.now();
  const { code, signal, output, endedAt } = await runCli(["--start-scripts", ...startScripts, "-o", outDir, ...(options.args ?? []), scriptPath], {
    cwd: dir,
    env: { TMPDIR: tmp, ...options.env },
    limit: options.limit,
    ...(options.onOutput ? { onOutput: options.onOutput } : {}),
  });
  return {
    code,
    signal,
    output,
    dir,
    outDir,
    tmp,
    qemuPids: qemuPidsOf(output),
    vdePids: vdePidsOf(output),
    ms: endedAt - began,
    endedAt,
    xml: () => readFile(join(outDir, "log.xml"), "utf8"),
  };
}

/** Live processes whose cwd is under `dir` or whose command line mentions it (start scripts, QEMUs, switches of one run). */
async function processesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const st = await readFile(`/proc/${entry}/stat`, "utf8");
      if (st.slice(st.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, "utf8")).replaceAll("\0", " ").trim();
      const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => "");
      if (cmdline.includes(dir) || cwd === dir || cwd.startsWith(`${dir}/`)) found.push(`${entry} (cwd ${cwd}) ${cmdline.slice(0, 160)}`);
    } catch {
      // ended while we looked
    }
  }
  return found;
}

/** (d): nothing of the run is left — by process group of every QEMU and vde_switch it reported, and by directory. */
async function assertNothingLeft(run: FaultRun): Promise<void> {
  assert.deepEqual(await survivors([...run.qemuPids, ...run.vdePids]), [], "no process of a reported QEMU/vde_switch group is left");
  assert.deepEqual(await processesUnder(run.dir), [], "no process of the run (cwd or arguments in its directory) is left");
}

/** The bad-input cases: no VM started, not even the driver's state directory. */
async function assertNoVmStarted(output: string, tmp: string, scriptsDir: string): Promise<void> {
  assert.doesNotMatch(output, /QEMU running|vde_switch running|Machine state will be reset/);
  assert.equal(existsSync(tmp) ? (await readdir(tmp)).length : 0, 0, `the driver created nothing in its TMPDIR ${tmp}`);
  assert.deepEqual(await processesUnder(scriptsDir), []);
}

function tail(run: { output: string }, n = 3000): string {
  return run.output.slice(-n);
}

before(async () => {
  await buildGuest();
});

// ---------------------------------------------------------------------------
// 1. QEMU killed from outside while a command runs

test("1. QEMU killed with SIGKILL during succeed('sleep 600'): MachineCrashedError, promptly; log complete; nothing left", async (t) => {
  let killedAt: number | undefined;
  let killedWhat = "";
  const run = await runFault('await machine.succeed("true");\nawait machine.succeed("sleep 600");\n', {
    limit: 120,
    onOutput: (text) => {
      const pid = qemuPidsOf(text)[0];
      if (killedAt === undefined && pid !== undefined && text.includes("must succeed: sleep 600")) {
        killedAt = -1;
        setTimeout(() => {
          void readFile(`/proc/${pid}/cmdline`, "utf8")
            .then((c) => (killedWhat = c.split("\0")[0] ?? ""))
            .catch(() => undefined)
            .finally(() => {
              killedAt = performance.now();
              process.kill(pid, "SIGKILL");
            });
        }, 1000);
      }
    },
  });
  assert.ok(killedAt !== undefined && killedAt > 0, `the test killed QEMU (output: ${tail(run)})`);
  assert.match(killedWhat, /qemu-system-x86_64$/, "the pid of 'QEMU running (pid N)' is QEMU itself");
  const afterKill = (run.endedAt - (killedAt as number)) / 1000;
  t.diagnostic(`CLI exited ${afterKill.toFixed(2)} s after QEMU was killed (whole run ${(run.ms / 1000).toFixed(1)} s)`);
  assert.equal(run.code, 1, tail(run));
  assert.match(run.output, /MachineCrashedError: machine: QEMU was killed by SIGKILL while running `sleep 600`/);
  assert.match(run.output, /test\.mjs:2/, "points at the script line");
  assert.ok(afterKill < 15, `the CLI exits within 15 s of the kill (took ${afterKill.toFixed(2)} s)`);
  const xml = await run.xml();
  assertWellFormed(xml);
  assert.match(xml, /MachineCrashedError: machine: QEMU was killed by SIGKILL while running `sleep 600`/);
  assert.equal(run.qemuPids.length, 1);
  await assertNothingLeft(run);
  await rm(run.dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// 2. Guest kernel panic during boot

test("2. kernel panic while booting: QEMU exited while booting, the serial tail shows the panic", async (t) => {
  const run = await runFault('await machine.succeed("true");\n', { limit: 120, env: { QEMU_KERNEL_PARAMS: "rdinit=/nonexistent" } });
  t.diagnostic(`panic reported after ${(run.ms / 1000).toFixed(1)} s`);
  assert.equal(run.code, 1, tail(run));
  const failure = run.output.slice(run.output.indexOf("test failed:"));
  assert.match(failure, /MachineCrashedError: machine: QEMU exited with status \d+ while booting \(before the backdoor shell started\)/, tail(run));
  assert.match(failure, /last serial output:[\s\S]*Kernel panic/, "the error's serial tail shows the panic");
  const xml = await run.xml();
  assertWellFormed(xml);
  assert.match(xml, /while booting/);
  assert.match(xml, /Kernel panic/);
  await assertNothingLeft(run);
  await rm(run.dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// 3, 4, 10: one VM, one script, one result per step

interface Step {
  ok: boolean;
  seconds: number;
  errorName?: string;
  errorCode?: string;
  message?: string;
  [key: string]: unknown;
}

const commandsScript = String.raw`
import { writeFileSync } from "node:fs";
const results = {};
const save = () => writeFileSync(process.env.RESULTS_FILE, JSON.stringify(results));
async function step(name, fn) {
  const t0 = performance.now();
  try {
    const value = await fn();
    results[name] = { ok: true, seconds: (performance.now() - t0) / 1000, ...value };
  } catch (e) {
    results[name] = { ok: false, seconds: (performance.now() - t0) / 1000, errorName: e?.name, errorCode: e?.code, message: String(e?.message ?? e) };
  }
  save();
}
await machine.succeed("true");

await subtest("a command that never ends", async () => {
  await step("executeTimeout", async () => {
    const r = await machine.execute("sleep 1000", { timeout: 2 });
    return { exitCode: r.exitCode, timedOut: r.timedOut };
  });
  await step("succeedTimeout", async () => ({ output: await machine.succeed("sleep 1000", { timeout: 2 }) }));
  await step("afterTimeout", async () => ({ output: await machine.succeed("echo still here", { timeout: 10 }) }));
});

await subtest("100 MB of output", async () => {
  await step("big", async () => {
    const r = await machine.execute("head -c 100000000 /dev/urandom | tee /tmp/big", { timeout: 300 });
    const maxRssKiB = process.resourceUsage().maxRSS;
    const { createHash } = await import("node:crypto");
    const hostSum = createHash("sha256").update(r.bytes).digest("hex");
    const guestSum = (await machine.succeed("sha256sum /tmp/big; rm /tmp/big", { timeout: 300 })).split(" ")[0];
    return { exitCode: r.exitCode, length: r.bytes.length, hostSum, guestSum, maxRssKiB };
  });
  await step("invalidUtf8", async () => {
    const r = await machine.execute("printf 'ok\\377\\376end'");
    return { exitCode: r.exitCode, hex: r.bytes.toString("hex"), output: r.output };
  });
});

await subtest("a background job that keeps stdout open", async () => {
  await step("detached", async () => ({ output: await machine.succeed("sleep 1000 >/dev/null 2>&1 &") }));
  await step("heldOpen", async () => ({ output: await machine.succeed("sleep 1000 &", { timeout: 3 }) }));
  await step("afterHeldOpen", async () => ({ output: await machine.succeed("echo alive", { timeout: 5 }) }));
  // A guest shell still stuck would make the driver's closing sync wait 75 s
  // (its 60 s timeout + grace): end the VM instead, the failure is recorded above.
  if (!results.afterHeldOpen.ok) await machine.crash();
});
`;

let commands: Promise<{ run: FaultRun; results: Record<string, Step> }> | undefined;
function commandsRun(): Promise<{ run: FaultRun; results: Record<string, Step> }> {
  commands ??= (async () => {
    const resultsDir = await mkdtemp(join(tmpdir(), "ntt-faults-"));
    const resultsFile = join(resultsDir, "results.json");
    const run = await runFault(commandsScript, { limit: 240, env: { RESULTS_FILE: resultsFile } });
    const results = JSON.parse(await readFile(resultsFile, "utf8").catch(() => "{}")) as Record<string, Step>;
    await rm(resultsDir, { recursive: true, force: true });
    return { run, results };
  })();
  return commands;
}

function stepOf(results: Record<string, Step>, name: string, run: FaultRun): Step {
  const s = results[name];
  assert.ok(s !== undefined, `step ${name} ran (driver output: ${tail(run)})`);
  return s;
}

test("3a. execute('sleep 1000', {timeout: 2}) returns exit 124, timedOut, within a few seconds", async (t) => {
  const { run, results } = await commandsRun();
  const s = stepOf(results, "executeTimeout", run);
  t.diagnostic(`execute with timeout 2 s returned after ${s.seconds.toFixed(2)} s`);
  assert.equal(s.ok, true, s.message);
  assert.equal(s.exitCode, 124);
  assert.equal(s.timedOut, true);
  assert.ok(s.seconds >= 1.9 && s.seconds < 6, `returned after ${s.seconds.toFixed(2)} s`);
});

test("3b. succeed('sleep 1000', {timeout: 2}) throws TimeoutError naming machine and command; the next command works", async (t) => {
  const { run, results } = await commandsRun();
  const s = stepOf(results, "succeedTimeout", run);
  t.diagnostic(`succeed with timeout 2 s threw after ${s.seconds.toFixed(2)} s`);
  assert.equal(s.ok, false);
  assert.equal(s.errorName, "TimeoutError");
  assert.equal(s.errorCode, "NTT_TIMEOUT");
  assert.match(s.message ?? "", /^machine: command `sleep 1000` timed out after 2 s\n.*guest-side timeout killed it \(exit code 124\)/);
  assert.ok(s.seconds < 6, `threw after ${s.seconds.toFixed(2)} s`);
  const next = stepOf(results, "afterTimeout", run);
  assert.equal(next.ok, true, next.message);
  assert.equal(next.output, "still here\n");
  const xml = await run.xml();
  assertWellFormed(xml);
  assert.match(xml, /\(failed: must succeed: sleep 1000, in \d+\.\d+ seconds\)/, "the XML log records the failed command");
});

test("10. 100 MB of random output arrives complete (sha256 as in the guest); the driver's peak RSS stays bounded; invalid UTF-8 becomes U+FFFD", async (t) => {
  const { run, results } = await commandsRun();
  const big = stepOf(results, "big", run);
  assert.equal(big.ok, true, big.message);
  const rssMiB = (big.maxRssKiB as number) / 1024;
  t.diagnostic(`100 MB answer in ${big.seconds.toFixed(1)} s (${(100 / big.seconds).toFixed(1)} MB/s); driver peak RSS ${rssMiB.toFixed(0)} MiB`);
  assert.equal(big.exitCode, 0);
  assert.equal(big.length, 100_000_000);
  assert.equal(big.hostSum, big.guestSum, "the bytes are the ones the guest wrote (sha256)");
  // The output itself is 95 MiB, held once (the data port's buffer of the
  // announced length), plus its string decoding for `output`; Node with the
  // driver loaded is ~80 MiB. 400 MiB leaves room for GC lag but would catch a
  // second copy of the bytes or base64 text being kept as well.
  assert.ok(rssMiB < 400, `peak RSS ${rssMiB.toFixed(0)} MiB < 400 MiB`);
  const bad = stepOf(results, "invalidUtf8", run);
  assert.equal(bad.ok, true, bad.message);
  assert.equal(bad.exitCode, 0);
  assert.equal(bad.hex, "6f6bfffe656e64", "bytes are exactly what printf wrote");
  assert.equal(bad.output, "ok\ufffd\ufffdend");
});

test("4. a background job holding stdout: the guest-side timeout ends it after 3 s with TimeoutError; the next command works; >/dev/null & returns at once", async (t) => {
  const { run, results } = await commandsRun();
  const detached = stepOf(results, "detached", run);
  const held = stepOf(results, "heldOpen", run);
  const next = stepOf(results, "afterHeldOpen", run);
  const describe = (s: Step): string => (s.ok ? `ok ${JSON.stringify(s.output)}` : `${s.errorName}: ${s.message?.split("\n").join(" / ")}`);
  t.diagnostic(`'sleep 1000 >/dev/null 2>&1 &': ${describe(detached)} after ${detached.seconds.toFixed(2)} s`);
  t.diagnostic(`'sleep 1000 &' with timeout 3: ${describe(held)} after ${held.seconds.toFixed(2)} s`);
  t.diagnostic(`then 'echo alive' with timeout 5: ${describe(next)} after ${next.seconds.toFixed(2)} s`);
  assert.equal(detached.ok, true, detached.message);
  assert.equal(detached.output, "");
  assert.ok(detached.seconds < 3, `returned at once (${detached.seconds.toFixed(2)} s)`);
  assert.equal(held.ok, false, "succeed must not return while the job holds stdout");
  assert.equal(held.errorName, "TimeoutError");
  assert.match(
    held.message ?? "",
    /^machine: command `sleep 1000 &` timed out after 3 s\n.*guest-side timeout killed it \(exit code 124\)/,
    "the guest-side timeout (not the host's grace period) ends it",
  );
  assert.ok(held.seconds < 8, `ends about 3 s after it began (took ${held.seconds.toFixed(2)} s)`);
  assert.equal(next.ok, true, `the next command works: ${next.message}`);
  assert.equal(next.output, "alive\n");
  const xml = await run.xml();
  assertWellFormed(xml);
  assert.match(xml, /\(failed: must succeed: sleep 1000 &amp;, in \d+\.\d+ seconds\)/, "the XML log records the failed command");
});

test("3/4/10. the shared run: exit 0, XML complete, nothing left", async (t) => {
  const { run } = await commandsRun();
  t.diagnostic(`shared run took ${(run.ms / 1000).toFixed(1)} s`);
  assert.equal(run.code, 0, tail(run));
  assertWellFormed(await run.xml());
  assert.equal(run.qemuPids.length, 1);
  await assertNothingLeft(run);
  await rm(run.dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// 5. Global timeout while several machines wait

// ---------------------------------------------------------------------------
// 6. SIGTERM during a wait, after boot

test("6. SIGTERM during a wait, after boot: exit 143, a complete log, no QEMU left", async (t) => {
  let sentAt: number | undefined;
  const run = await runFault('await machine.waitUntilSucceeds("test -e /never", { timeout: 600 });', {
    limit: 120,
    onOutput: (text, child) => {
      if (sentAt === undefined && text.includes("connected to guest root shell") && text.includes("waiting for success: test -e /never")) {
        sentAt = -1;
        setTimeout(() => {
          sentAt = performance.now();
          child.kill("SIGTERM");
        }, 1000);
      }
    },
  });
  assert.ok(sentAt !== undefined && sentAt > 0, `the wait began after boot (output: ${tail(run)})`);
  const after = (run.endedAt - (sentAt as number)) / 1000;
  t.diagnostic(`CLI exited ${after.toFixed(2)} s after SIGTERM`);
  assert.equal(run.code, 143, tail(run));
  assert.match(run.output, /received SIGTERM; stopping the VMs/);
  assert.match(run.output, /interrupted by SIGTERM/);
  assert.ok(after < 15, `exits within 15 s of SIGTERM (${after.toFixed(2)} s)`);
  const xml = await run.xml();
  assertWellFormed(xml);
  assert.match(xml, /interrupted by SIGTERM/);
  assert.equal(run.qemuPids.length, 1);
  await assertNothingLeft(run);
  await rm(run.dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// 7. An exception thrown in a subtest

// ---------------------------------------------------------------------------
// 8. Broken start scripts

test("8a. a start script that exits at once: the error names the machine and shows its output", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "ntt-broken-"));
  const broken = join(dir, "run-broken-vm");
  await writeFile(broken, '#!/bin/sh\necho "broken on purpose" >&2\nexit 3\n', { mode: 0o755 });
  const run = await runFault('await broken.succeed("true");\n', { startScripts: [broken], limit: 60 });
  t.diagnostic(`reported after ${(run.ms / 1000).toFixed(1)} s`);
  assert.equal(run.code, 1, tail(run));
  assert.match(run.output, /MachineCrashedError: broken: QEMU exited with status 3 while starting/);
  assert.match(run.output.slice(run.output.indexOf("test failed:")), /broken on purpose/, "the error shows the script's output");
  assert.ok(run.ms < 15_000, `reported promptly (${(run.ms / 1000).toFixed(1)} s)`);
  const xml = await run.xml();
  assertWellFormed(xml);
  assert.match(xml, /broken: QEMU exited with status 3 while starting/);
  assert.match(xml, /broken on purpose/);
  assert.deepEqual(run.qemuPids, [], "no QEMU ever ran");
  await assertNothingLeft(run);
  assert.deepEqual(await processesUnder(dir), []);
  await rm(dir, { recursive: true, force: true });
  await rm(run.dir, { recursive: true, force: true });
});

test("8b. a start script that is not executable: exit 2 before any VM, naming the path", async () => {
  const { dir, scriptPath } = await prepare("await machine.succeed('true');", []);
  const scripts = await writeStartScripts(dir, [{ name: "machine", vlans: [] }]);
  const path = scripts.machine as string;
  await chmod(path, 0o644);
  const tmp = join(dir, "tmp");
  const r = spawnSync(process.execPath, [CLI, "--start-scripts", path, "-o", join(dir, "out"), scriptPath], {
    encoding: "utf8",
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1", TMPDIR: tmp },
    timeout: 30_000,
  });
  assert.equal(r.status, 2, r.stderr);
  assert.ok(r.stderr.includes(`start script of machine machine is not executable: ${path}`), r.stderr);
  assert.equal(existsSync(join(dir, "out", "log.xml")), false, "no log: it stopped before the test began");
  await assertNoVmStarted(r.stderr + r.stdout, tmp, dir);
  await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// 9. Missing host tools

/** A directory of symlinks to exactly `tools`: a PATH on which everything else is missing. */
async function pathWith(tools: string[]): Promise<string> {
  const bin = await mkdtemp(join(tmpdir(), "ntt-path-"));
  for (const tool of tools) {
    const found = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
    assert.ok(found.startsWith("/"), `${tool} is installed on the host`);
    await symlink(found, join(bin, tool));
  }
  return bin;
}

const BASICS = ["node", "bash", "env", "mktemp", "mkdir"];

test("9a. qemu-system-x86_64 missing from PATH: exit 2 before any VM, saying what to install", async () => {
  const bin = await pathWith(BASICS);
  const { dir, scripts, scriptPath } = await prepare("await machine.succeed('true');");
  const tmp = join(dir, "tmp");
  const r = spawnSync(process.execPath, [CLI, "--start-scripts", ...scripts, "-o", join(dir, "out"), scriptPath], {
    encoding: "utf8",
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1", PATH: bin, TMPDIR: tmp },
    timeout: 30_000,
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(
    r.stderr,
    /the start script of machine machine \(.*run-machine-vm\) runs qemu-system-x86_64, which is not on PATH: install QEMU \(Debian: apt-get install qemu-system-x86/,
  );
  await assertNoVmStarted(r.stderr + r.stdout, tmp, dir);
  await rm(bin, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
});

test("9b. vde_switch missing from PATH with --vlans: exit 2 before any VM, saying what to install", async () => {
  const bin = await pathWith([...BASICS, "qemu-system-x86_64"]);
  const { dir, scripts, scriptPath } = await prepare("await machine.succeed('true');", [{ name: "machine", vlans: [1] }]);
  const tmp = join(dir, "tmp");
  const r = spawnSync(process.execPath, [CLI, "--start-scripts", ...scripts, "--vlans", "1", "-o", join(dir, "out"), scriptPath], {
    encoding: "utf8",
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1", PATH: bin, TMPDIR: tmp },
    timeout: 30_000,
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /vlans 1 need vde_switch, which is not on PATH: install vde2 \(Debian: apt-get install vde2/);
  await assertNoVmStarted(r.stderr + r.stdout, tmp, dir);
  await rm(bin, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// 11. A 200-character state directory

test("11. --state-dir of 200 characters with a vlan: the test runs; sockets fall back to short paths, removed afterwards", async (t) => {
  const base = await mkdtemp(join(tmpdir(), "ntt-long-"));
  let stateDir = base;
  while (stateDir.length < 200) stateDir = join(stateDir, "x".repeat(Math.min(40, 200 - stateDir.length - 1)));
  assert.equal(stateDir.length, 200);
  await mkdir(stateDir, { recursive: true });
  const qemuSockets: string[] = [];
  const run = await runFault(
    [
      'const out = await machine.succeed("ip -4 addr show eth1");',
      'if (!out.includes("192.168.1.1/24")) throw new Error("eth1 has no vlan address: " + out);',
    ].join("\n"),
    {
      nodes: [{ name: "machine", vlans: [1] }],
      args: ["--state-dir", stateDir, "--vlans", "1"],
      limit: 120,
      onOutput: (text) => {
        const pid = qemuPidsOf(text)[0];
        if (pid !== undefined && qemuSockets.length === 0) {
          qemuSockets.push("?");
          void readFile(`/proc/${pid}/cmdline`, "utf8").then(
            (c) => {
              qemuSockets.length = 0;
              const args = c.split("\0");
              for (const flag of ["-qmp", "-monitor", "-chardev"]) {
                const v = args[args.indexOf(flag) + 1] ?? "";
                const m = /(?:unix:|path=)([^,]+)/.exec(v);
                if (m) qemuSockets.push(m[1] as string);
              }
              const vde = args.find((a) => a.includes("sock="));
              if (vde) qemuSockets.push(`vde:${/sock=([^,]+)/.exec(vde)?.[1]}`);
            },
            () => undefined,
          );
        }
      },
    },
  );
  t.diagnostic(`run took ${(run.ms / 1000).toFixed(1)} s; QEMU sockets ${qemuSockets.join(" ")}`);
  assert.equal(run.code, 0, tail(run));
  assertWellFormed(await run.xml());
  assert.equal(run.qemuPids.length, 1);
  assert.equal(run.vdePids.length, 1, "the vlan's switch ran");
  // The vde_switch socket: its directory is short and not under the state dir.
  const vdeSocket = /vlan1: vde_switch running \(pid \d+, socket ([^)]+)\)/.exec(run.output)?.[1] ?? "";
  assert.ok(vdeSocket.startsWith("/") && !vdeSocket.startsWith(stateDir), `vde socket in a fallback dir: ${vdeSocket}`);
  assert.ok(Buffer.byteLength(join(vdeSocket, "ctl")) <= 107, `vde control socket fits sun_path: ${vdeSocket}`);
  // QEMU's own sockets: short and not under the state dir.
  assert.ok(qemuSockets.length >= 3 && !qemuSockets.includes("?"), `read QEMU's arguments: ${qemuSockets.join(" ")}`);
  for (const s of qemuSockets) {
    const path = s.replace(/^vde:/, "");
    assert.ok(!path.startsWith(stateDir) && Buffer.byteLength(path) <= 107, `socket ${path} is a short fallback`);
  }
  assert.ok(qemuSockets.includes(`vde:${vdeSocket}`), "QEMU got the fallback vde socket");
  // The driver removes the fallback directories it made.
  for (const s of [...qemuSockets.map((p) => p.replace(/^vde:/, "")), vdeSocket]) {
    const parent = join(s, "..");
    assert.notEqual(parent, "/tmp", `${s} is in a directory of its own`);
    assert.equal(existsSync(parent), false, `fallback dir ${parent} removed`);
  }
  await assertNothingLeft(run);
  await rm(run.dir, { recursive: true, force: true });
  await rm(base, { recursive: true, force: true });
});
