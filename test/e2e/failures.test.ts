// What a user sees when things go wrong: each case through the real CLI.
// The driver's own failure paths (a failing command, an exception, signals,
// the global timeout) are tested on fake guests in the fast tier
// (unit/driver-fake.test.ts); here what needs the real console.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, test } from "node:test";
import { buildGuest } from "../guests/start-scripts.js";
import { CLI, prepare, runDriver, survivors } from "./harness.js";
import { spawnSync } from "node:child_process";

before(async () => {
  await buildGuest();
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
  const json = {
    vms: { machine: { name: "machine", start_script: join(dir, "run-ghost-vm") } },
    vlans: [],
    global_timeout: "PT1M",
    test_script: scriptPath,
    display_viewers: {},
  };
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

const bigOutput = `
const r = await machine.execute("head -c 1500000 /dev/urandom | tee /tmp/big > /dev/null; cat /tmp/big");
const sum = (await machine.succeed("sha256sum /tmp/big | cut -d' ' -f1")).trim();
const { createHash } = await import("node:crypto");
if (createHash("sha256").update(r.bytes).digest("hex") !== sum) throw new Error("checksum mismatch");
log("output intact: " + r.bytes.length);
`;

test("a slow host reader still gets every byte through the data port (QEMU throttles the guest)", async () => {
  const script = `${bigOutput}
const ports = await machine.succeed("cat /sys/class/virtio-ports/*/name");
log("ports: " + ports.trim().split("\\n").join(","));
`;
  const run = await runDriver(script, { env: { NTT_TEST_SHELL_READ_DELAY_MS: "20" } });
  assert.equal(run.code, 0, run.output.slice(-2000));
  assert.match(run.output, /output intact: 1500000/);
  // The port the large answer took (the guest-side choice is tested in unit/framing).
  assert.match(run.output, /ports: .*org\.nixos-test-ts\.data/);
});

test("a slow host reader still gets every byte over the console (no data port: flow control)", async () => {
  const run = await runDriver(bigOutput, { env: { NTT_TEST_SHELL_READ_DELAY_MS: "20", NTT_TEST_NO_DATA_PORT: "1" } });
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
