// What a user sees when things go wrong: each case through the real CLI.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, test } from "node:test";
import { buildGuest } from "../guests/start-scripts.js";
import { CLI, assertWellFormed, prepare, runDriver, survivors } from "./harness.js";
import { spawnSync } from "node:child_process";

before(async () => {
  await buildGuest();
});

test("a failing command fails the test: machine, command, exit code, output, script line; XML log complete", async () => {
  const run = await runDriver(
    [
      'await machine.succeed("true");',
      'await subtest("the failing part", async () => {',
      '  await machine.succeed("echo first line; echo last words; exit 3");',
      "});",
    ].join("\n"),
  );
  assert.equal(run.code, 1, run.output.slice(-3000));
  assert.match(run.output, /CommandFailedError: machine: command `echo first line; echo last words; exit 3` failed \(exit code 3\)/);
  assert.match(run.output, /last words/);
  assert.match(run.output, /test\.mjs:3:17/);
  assert.match(run.output, /3 \|   await machine\.succeed/);
  const xml = await run.xml();
  assertWellFormed(xml);
  assert.match(xml, /Test &quot;the failing part&quot; failed with error|Test "the failing part" failed with error/);
  assert.match(xml, /exit code 3/);
  assert.deepEqual(await survivors(run.qemuPids), []);
});

test("an exception thrown by the script fails the test with its stack", async () => {
  const run = await runDriver('await machine.succeed("true");\nthrow new Error("the script gave up");\n');
  assert.equal(run.code, 1);
  assert.match(run.output, /Error: the script gave up/);
  assert.match(run.output, /test\.mjs:2/);
  assertWellFormed(await run.xml());
  assert.deepEqual(await survivors(run.qemuPids), []);
});

test("a malformed --config is rejected naming the field, before any VM starts", async () => {
  const { dir, scriptPath } = await prepare("await machine.succeed('true');");
  const config = join(dir, "config.json");
  await writeFile(config, JSON.stringify({ vms: { machine: { name: "machine", start_script: 42 } }, vlans: [], global_timeout: 60, test_script: scriptPath }));
  const r = spawnSync(process.execPath, [CLI, "--config", config, "-o", dir], { encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /vms\.machine\.start_script must be a non-empty string, got 42/);
  assert.doesNotMatch(r.stderr, /QEMU running/);
});

test("--config: an unknown key is a warning (as nixpkgs' driver ignores it), an ISO-8601 global_timeout is read", async () => {
  const { dir, scriptPath } = await prepare("await machine.succeed('true');");
  const config = join(dir, "config.json");
  // A start script that does not exist: the run stops at its check, after the configuration was read.
  const json = { vms: { machine: { name: "machine", start_script: join(dir, "run-ghost-vm") } }, vlans: [], global_timeout: "PT1M", test_script: scriptPath, display_viewers: {} };
  await writeFile(config, JSON.stringify(json));
  const r = spawnSync(process.execPath, [CLI, "--config", config, "-o", dir], { encoding: "utf8" });
  assert.match(r.stderr, /unknown field display_viewers ignored \(known fields: vms, containers, vlans, global_timeout, enable_ssh_backdoor, test_script\)/);
  assert.doesNotMatch(r.stderr, /global_timeout must be/);
  assert.match(r.stderr, /start script of machine machine not found/);
  assert.equal(r.status, 2);
});

test("a missing start script is rejected naming it", async () => {
  const { dir, scriptPath } = await prepare("await machine.succeed('true');");
  const r = spawnSync(process.execPath, [CLI, "--start-scripts", join(dir, "run-ghost-vm"), "-o", dir, scriptPath], { encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /start script of machine ghost not found: .*run-ghost-vm/);
});

test("SIGINT during a wait: exit 130, a complete log, no QEMU left", async () => {
  let sent = false;
  const run = await runDriver('await machine.waitUntilSucceeds("test -e /never", { timeout: 600 });', {
    onOutput: (text, child) => {
      if (!sent && text.includes("waiting for success: test -e /never")) {
        sent = true;
        setTimeout(() => child.kill("SIGINT"), 1000);
      }
    },
    limit: 120,
  });
  assert.ok(sent, "the wait began");
  assert.equal(run.code, 130, run.output.slice(-2000));
  assert.match(run.output, /interrupted by SIGINT/);
  const xml = await run.xml();
  assertWellFormed(xml);
  assert.match(xml, /interrupted by SIGINT/);
  assert.equal(run.qemuPids.length, 1);
  assert.deepEqual(await survivors(run.qemuPids), []);
});

const bigOutput = `
const r = await machine.execute("head -c 1500000 /dev/urandom | tee /tmp/big > /dev/null; cat /tmp/big");
const sum = (await machine.succeed("sha256sum /tmp/big | cut -d' ' -f1")).trim();
const { createHash } = await import("node:crypto");
if (createHash("sha256").update(r.bytes).digest("hex") !== sum) throw new Error("checksum mismatch");
log("output intact: " + r.bytes.length);
`;

test("a slow host reader still gets every byte (flow control)", async () => {
  const run = await runDriver(bigOutput, { env: { NTT_TEST_SHELL_READ_DELAY_MS: "20" } });
  assert.equal(run.code, 0, run.output.slice(-2000));
  assert.match(run.output, /output intact: 1500000/);
});

test("without flow control a slow reader loses output, and that is an OutputLostError, not a short answer", async () => {
  const run = await runDriver(bigOutput, { env: { NTT_TEST_SHELL_READ_DELAY_MS: "20", NTT_TEST_NO_FLOW_CONTROL: "1" } });
  assert.equal(run.code, 1, run.output.slice(-2000));
  assert.match(run.output, /OutputLostError: machine: the output of `head -c 1500000/);
  assert.doesNotMatch(run.output, /output intact/);
  assert.deepEqual(await survivors(run.qemuPids), []);
});
