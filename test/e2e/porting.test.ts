// Issue 15 items 3-5 on a real systemd guest (one boot): a restarted backdoor
// shell, createMachine, and the semantics that match nixpkgs (waitForFile
// expands, waitForQmpEvent finds queued events, Python regex syntax is
// refused, succeed has no default time limit).
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { buildGuest, writeStartScripts } from "../guests/start-scripts.js";
import { runDriver, survivors, type Run } from "./harness.js";

const script = String.raw`
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ShellRestartedError, UsageError } from "nixos-test-ts";
const results = {};
const save = () => writeFileSync(join(process.env.RESULTS_DIR, "porting.json"), JSON.stringify(results));

await subtest("a command that restarts the backdoor shell fails at once; the next one runs in the new shell", async () => {
  await machine.waitForUnit("multi-user.target");
  const pid = (await machine.succeed("echo $$")).trim();
  const t0 = performance.now();
  const e = await machine.succeed("systemctl restart backdoor.service; sleep 600").catch((x) => x);
  results.restartFailedAfter = (performance.now() - t0) / 1000;
  assert.ok(e instanceof ShellRestartedError, String(e));
  assert.match(e.message, /machine: the backdoor shell started again while .systemctl restart backdoor\.service; sleep 600. ran/);
  const pid2 = (await machine.succeed("echo $$")).trim();
  assert.notEqual(pid2, pid, "a new shell answers");
  assert.equal(await machine.succeed("echo works"), "works\n");
  results.restart = true;
  save();
});

await subtest("execute(…, { checkOutput: false }) then more commands", async () => {
  const r = await machine.execute("systemctl restart backdoor.service", { checkOutput: false });
  assert.equal(r.exitCode, -2);
  assert.equal(await machine.succeed("echo after restart"), "after restart\n");
  const r2 = await machine.execute("sleep 2; echo done > /tmp/detached", { checkOutput: false });
  assert.equal(r2.exitCode, -2);
  // Runs after the detached command finished.
  assert.equal(await machine.succeed("cat /tmp/detached"), "done\n");
  results.checkOutputFalse = true;
  save();
});

await subtest("waitForFile expands globs, ~user and variables as test -e does", async () => {
  await machine.succeed("(sleep 1; touch /tmp/report-42.log /root/flag-home) >/dev/null 2>&1 &");
  await machine.waitForFile("/tmp/report-*.log", { timeout: 60 });
  await machine.waitForFile("~root/flag-home", { timeout: 60 });
  await machine.waitForFile("$HOME/flag-home", { timeout: 60 });
  results.waitForFile = true;
  save();
});

await subtest("waitForQmpEvent finds an event that came before the call", async () => {
  await machine.sendMonitorCommand("stop");
  await machine.sendMonitorCommand("cont");
  const ev = await machine.waitForQmpEvent((e) => e.event === "RESUME", { timeout: 30 });
  assert.equal(ev.event, "RESUME");
  results.qmpQueued = true;
  save();
});

await subtest("Python-only regex syntax is refused with the JavaScript form", async () => {
  const e = await machine.waitForConsoleText("(?P<word>login)", { timeout: 1 }).catch((x) => x);
  assert.ok(e instanceof UsageError, String(e));
  assert.match(e.message, /named group is \(\?<name>…\) in JavaScript/);
  const f = await machine.waitForConsoleText("(?i)LOGIN", { timeout: 1 }).catch((x) => x);
  assert.ok(f instanceof UsageError, String(f));
  results.pythonRegex = true;
  save();
});

await subtest("createMachine: a further VM from a start command, with a name", async () => {
  const extra = createMachine(process.env.EXTRA_START, { name: "extra" });
  assert.equal(extra.name, "extra");
  const dup = (() => { try { createMachine(process.env.EXTRA_START, { name: "extra" }); } catch (x) { return x; } })();
  assert.ok(dup instanceof UsageError, String(dup));
  await extra.start();
  assert.equal((await extra.succeed("cat /proc/sys/kernel/hostname")).trim().length > 0, true);
  assert.match(extra.stateDir, /vm-state-extra$/);
  await extra.shutdown();
  results.createMachine = true;
  save();
});
`;

let run: Run;
let results: string;

before(async () => {
  await buildGuest("systemd");
  results = await mkdtemp(join(tmpdir(), "ntt-porting-"));
  const extra = await writeStartScripts(join(results, "extra"), [{ name: "extra", vlans: [] }]);
  run = await runDriver(script, {
    guest: "systemd",
    env: { RESULTS_DIR: results, EXTRA_START: extra.extra as string },
    limit: 900,
  });
});

test("issue 15 items 3-5 on a real systemd guest", () => {
  assert.equal(run.code, 0, run.output.slice(-6000));
});

test("the restarted shell's command failed at once, not after a timeout", async (t) => {
  const r = JSON.parse(await readFile(join(results, "porting.json"), "utf8")) as Record<string, number | boolean>;
  assert.equal(r.restart, true);
  assert.ok((r.restartFailedAfter as number) < 60, `failed after ${r.restartFailedAfter} s`);
  t.diagnostic(`ShellRestartedError after ${(r.restartFailedAfter as number).toFixed(2)} s`);
});

test("no QEMU is left", async () => {
  assert.deepEqual(await survivors(run.qemuPids), []);
});
