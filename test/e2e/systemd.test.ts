// Two Debian systemd guests on vlan 1, booted once: every systemd method
// against a real systemd, a service reached by host name, and the
// diagnostics of a unit that fails.
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { buildGuest } from "../guests/start-scripts.js";
import { runDriver, survivors, type Run } from "./harness.js";

const script = String.raw`
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { UnitFailedError, MachineError } from "nixos-test-ts";
const results = {};
const began = performance.now();
await startAll();

await subtest("boot", async () => {
  await Promise.all([server.waitForUnit("multi-user.target"), client.waitForUnit("multi-user.target")]);
  results.bootToMultiUser = (performance.now() - began) / 1000;
});

await subtest("a service reached by host name", async () => {
  await server.waitForUnit("www.service");
  await client.waitForOpenPort(80, { address: "server", timeout: 60 });
  assert.match(await client.succeed("busybox wget -q -O - http://server/"), /Hello from server/);
});

await subtest("a failing unit fails the wait at once, with status and journal", async () => {
  const started = performance.now();
  const e = await server.waitForUnit("broken.service", { timeout: 300 }).catch((x) => x);
  results.failFast = (performance.now() - started) / 1000;
  assert.ok(e instanceof UnitFailedError, String(e));
  assert.equal(e.unit, "broken.service");
  assert.match(e.status, /broken\.service/);
  assert.match(e.journal, /about to fail/);
  assert.match(e.message, /server: unit broken\.service entered the failed state/);
});

await subtest("unit info, properties, state, jobs", async () => {
  const info = await server.getUnitInfo("www.service");
  assert.equal(info.ActiveState, "active");
  assert.equal(info.Id, "www.service");
  assert.equal(await server.getUnitProperty("www.service", "SubState"), "running");
  await server.requireUnitState("www.service", "active");
  const wrong = await server.requireUnitState("broken.service", "active").catch((x) => x);
  assert.ok(wrong instanceof MachineError && /state 'failed'/.test(wrong.message), String(wrong));
  const stop = await server.stopJob("www.service");
  assert.equal(stop.exitCode, 0);
  await client.waitForClosedPort(80, { address: "server", timeout: 60 });
  await server.requireUnitState("www.service", "inactive");
  assert.equal((await server.startJob("www.service")).exitCode, 0);
  const t = performance.now();
  await server.waitForJob("www.service");
  results.waitForUnitAfterStart = (performance.now() - t) / 1000;
  const status = await server.systemctl("is-active www.service");
  assert.equal(status.output.trim(), "active");
});

await subtest("unit names as nixpkgs tests write them; nixpkgs' t, log and machines", async () => {
  // No suffix: systemd reads a service (the generator's check accepts "www" for a declared www.service).
  await server.waitForUnit("www");
  t.assertEqual(await server.getUnitProperty("www", "Id"), "www.service");
  t.assertEqual(machines.map((m) => m.name), ["client", "server"]);
  t.assertIs(machines.server, server);
  await log.nested("bare unit names", async () => log.info("www is www.service"));
});

await subtest("a user's systemd", async () => {
  await server.waitForUnit("default.target", { user: "alice" });
  const r = await server.systemctl("list-units --type=target --no-pager", { user: "alice" });
  assert.equal(r.exitCode, 0);
  assert.match(r.output, /default\.target/);
});

await subtest("virtual consoles", async () => {
  await server.waitUntilTtyMatches(1, /login:/, { timeout: 120 });
  await server.dumpTtyContents(1);
});

writeFileSync(join(process.env.RESULTS_DIR, "systemd.json"), JSON.stringify(results));
`;

let run: Run;
let results: string;

before(async () => {
  await buildGuest("systemd");
  results = await mkdtemp(join(tmpdir(), "ntt-systemd-"));
  run = await runDriver(script, {
    guest: "systemd",
    nodes: [
      { name: "client", vlans: [1] },
      { name: "server", vlans: [1] },
    ],
    args: ["--vlans", "1"],
    env: { RESULTS_DIR: results },
    limit: 600,
  });
});

test("systemd methods work against a real systemd; a service is reached by host name", () => {
  assert.equal(run.code, 0, run.output.slice(-5000));
});

test("figures: boot to multi-user.target, failing-unit diagnosis, waitForUnit after start", async (t) => {
  const r = JSON.parse(await readFile(join(results, "systemd.json"), "utf8")) as Record<string, number>;
  assert.ok((r.failFast ?? 99) < 10, `the failing unit was reported after ${r.failFast} s`);
  t.diagnostic(
    `two nodes to multi-user.target: ${r.bootToMultiUser?.toFixed(2)} s; failing unit reported in ${r.failFast?.toFixed(2)} s; waitForJob after start ${r.waitForUnitAfterStart?.toFixed(2)} s`,
  );
});

test("no QEMU and no vde_switch is left", async () => {
  assert.equal(run.qemuPids.length, 2);
  assert.deepEqual(await survivors(run.qemuPids), []);
});
