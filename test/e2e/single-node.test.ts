// One tiny guest, booted once, through the real CLI: the everyday methods.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, test } from "node:test";
import { assertWellFormed, runDriver, survivors, type Run } from "./harness.js";
import { buildGuest } from "../guests/start-scripts.js";

const script = String.raw`
import assert from "node:assert/strict";
import { writeFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CommandFailedError, MachineCrashedError, TimeoutError } from "nixos-test-ts";

const results = {};
const hostDir = process.env.HOST_DIR;

await subtest("succeed, fail, execute", async () => {
  assert.equal(await machine.succeed("echo hello"), "hello\n");
  // several commands per call, outputs joined, as in Python
  assert.equal(await machine.succeed("echo a", "echo b"), "a\nb\n");
  // set -e semantics: a failing first statement fails the command
  await machine.fail("false; true");
  const r = await machine.execute("printf 'one\\ntwo\\n'; exit 3");
  assert.equal(r.exitCode, 3);
  assert.equal(r.output, "one\ntwo\n");
  // binary-safe: NUL and invalid UTF-8 survive in bytes
  const b = await machine.execute("printf '\\000\\377\\001'");
  assert.deepEqual([...b.bytes], [0, 255, 1]);
  // stdin is /dev/null: a reading command cannot eat the driver's next command
  assert.equal(await machine.succeed("cat; echo done"), "done\n");
  const e = await machine.succeed("exit 4").catch((x) => x);
  assert.ok(e instanceof CommandFailedError, String(e));
  assert.equal(e.exitCode, 4);
  assert.equal(e.machine, "machine");
  assert.match(e.message, /machine: command .exit 4. failed \(exit code 4\)/);
});

await subtest("timeouts", async () => {
  const started = Date.now();
  const r = await machine.execute("sleep 600 & sleep 500; echo never", { timeout: 2 });
  results.timeoutSeconds = (Date.now() - started) / 1000;
  assert.equal(r.exitCode, 124);
  assert.equal(r.timedOut, true);
  const e = await machine.succeed("sleep 600", { timeout: 1 }).catch((x) => x);
  assert.ok(e instanceof TimeoutError, String(e));
  // the next command works, and no sleep is left running (init may not have reaped the zombies yet)
  assert.equal(await machine.succeed("echo alive"), "alive\n");
  await machine.succeed("for p in $(pidof sleep || true); do grep -q '^State:.*Z' /proc/$p/status; done");
});

await subtest("waits", async () => {
  await machine.succeed("(sleep 3; touch /tmp/later) >/dev/null 2>&1 &");
  const started = Date.now();
  await machine.waitUntilSucceeds("test -e /tmp/later", { timeout: 30 });
  results.waitSeconds = (Date.now() - started) / 1000;
  await machine.waitForFile("/tmp/later");
  await machine.waitUntilFails("test -e /tmp/never");
  const t = await machine.waitUntilSucceeds("false", { timeout: 1 }).catch((x) => x);
  assert.ok(t instanceof TimeoutError, String(t));
  assert.match(t.message, /last exit code 1/);
  await machine.succeed("echo console-marker-42 > /dev/ttyS0");
  assert.equal(await machine.waitForConsoleText("console-marker-\\d+", { timeout: 30 }), "console-marker-42");
  const c = await machine.waitForConsoleText("never-printed", { timeout: 1 }).catch((x) => x);
  assert.ok(c instanceof TimeoutError, String(c));
  await machine.succeed("(nc -l -p 8000 >/dev/null 2>&1 &)");
  await machine.waitForOpenPort(8000, { timeout: 30 });
  await machine.waitForClosedPort(8001, { timeout: 30 });
});

await subtest("monitor and QMP", async () => {
  assert.match(await machine.sendMonitorCommand("info status"), /running/);
  const status = await machine.qmp.execute("query-status");
  assert.equal(status.status, "running");
});

await subtest("copy files", async () => {
  await machine.copyFromHost(join(hostDir, "payload"), "/root/deep/dir/payload");
  assert.equal(await machine.succeed("sha256sum /root/deep/dir/payload | cut -d' ' -f1"), readFileSync(join(hostDir, "payload.sha256"), "utf8"));
  await machine.succeed("mkdir -p /tmp/tree/sub && echo leaf > /tmp/tree/sub/leaf");
  const copied = await machine.copyFromMachine("/tmp/tree", "from-vm");
  assert.equal(readFileSync(join(copied, "sub", "leaf"), "utf8"), "leaf\n");
});

await subtest("large output", async () => {
  const started = Date.now();
  const r = await machine.execute("head -c 20000000 /dev/urandom | tee /tmp/big | sha256sum | cut -d' ' -f1 >&2; cat /tmp/big", { timeout: 600 });
  results.bigSeconds = (Date.now() - started) / 1000;
  assert.equal(r.exitCode, 0);
  assert.equal(r.bytes.length, 20000000);
  const guestSum = (await machine.succeed("sha256sum /tmp/big | cut -d' ' -f1")).trim();
  const { createHash } = await import("node:crypto");
  assert.equal(createHash("sha256").update(r.bytes).digest("hex"), guestSum);
});

await subtest("shutdown, restart, crash", async () => {
  await machine.shutdown();
  assert.equal(machine.isUp(), false);
  await machine.start();
  assert.equal(await machine.succeed("echo again"), "again\n");
  const running = machine.succeed("sleep 300");
  await new Promise((r) => setTimeout(r, 500));
  const started = Date.now();
  await machine.crash();
  const e = await running.catch((x) => x);
  results.crashSeconds = (Date.now() - started) / 1000;
  assert.ok(e instanceof MachineCrashedError, String(e));
  assert.match(e.message, /machine: QEMU .* while running .sleep 300./);
});

writeFileSync(join(hostDir, "results.json"), JSON.stringify(results));
`;

let run: Run;
let hostDir: string;

before(async () => {
  await buildGuest();
  const { mkdtemp } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  hostDir = await mkdtemp(join(tmpdir(), "ntt-host-"));
  const payload = randomBytes(300_000);
  await writeFile(join(hostDir, "payload"), payload);
  await writeFile(join(hostDir, "payload.sha256"), `${createHash("sha256").update(payload).digest("hex")}\n`);
  run = await runDriver(script, { env: { HOST_DIR: hostDir } });
});

test("the script passes on a real tiny guest", () => {
  assert.equal(run.code, 0, run.output.slice(-4000));
  assert.match(run.output, /test script finished in/);
});

test("a guest-side timeout fires on time and kills the whole process tree", async () => {
  const results = JSON.parse(await readFile(join(hostDir, "results.json"), "utf8")) as Record<string, number>;
  assert.ok((results.timeoutSeconds ?? 0) >= 2 && (results.timeoutSeconds ?? 99) < 10, `took ${results.timeoutSeconds} s`);
  assert.ok((results.crashSeconds ?? 99) < 10, `a crash took ${results.crashSeconds} s to surface`);
});

test("the XML log is well-formed and names every subtest", async () => {
  const xml = await run.xml();
  for (const name of ["succeed, fail, execute", "timeouts", "waits", "copy files", "large output"]) {
    assert.ok(xml.includes(`subtest: ${name}`), name);
  }
  assert.match(xml, /<line machine="machine" type="serial">/);
  assertWellFormed(xml);
});

test("no QEMU is left", async () => {
  assert.ok(run.qemuPids.length >= 2, "expected two boots");
  assert.deepEqual(await survivors(run.qemuPids), []);
});
