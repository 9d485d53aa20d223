// Three tiny guests on two vlans, booted once: a and b on vlan 1, b and c on
// vlan 2. Names resolve, vlans isolate, block() cuts a link, and commands to
// different machines run at the same time.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, test } from "node:test";
import { buildGuest } from "../guests/start-scripts.js";
import { runDriver, survivors, type Run } from "./harness.js";

const script = String.raw`
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
const results = {};
await startAll();

await subtest("names and addresses", async () => {
  assert.match(await a.succeed("ip -4 addr show eth1"), /192\.168\.1\.1\/24/);
  assert.match(await b.succeed("ip -4 addr show eth2"), /192\.168\.2\.2\/24/);
  await a.succeed("ping -c1 -W 5 b");
  await b.succeed("ping -c1 -W 5 a");
});

await subtest("the middle node reaches both vlans, the outer ones cannot see each other", async () => {
  await b.succeed("ping -c1 -W 5 c");
  await c.succeed("ping -c1 -W 5 192.168.2.2");
  await a.fail("ping -c1 -W 2 c");
  await a.fail("ping -c1 -W 2 192.168.2.3");
  await c.fail("ping -c1 -W 2 192.168.1.1");
});

await subtest("block and unblock", async () => {
  await a.block();
  await a.fail("ping -c1 -W 2 b");
  await a.unblock();
  await a.waitUntilSucceeds("ping -c1 -W 1 b", { timeout: 30 });
});

await subtest("commands to different machines overlap", async () => {
  const spans = {};
  const timed = async (name, m) => {
    const start = performance.now();
    await m.succeed("sleep 2");
    spans[name] = [start, performance.now()];
  };
  const began = performance.now();
  await Promise.all([timed("a", a), timed("c", c)]);
  const total = performance.now() - began;
  log("concurrent: a " + JSON.stringify(spans.a.map((t) => Math.round(t - began))) + " ms, c " + JSON.stringify(spans.c.map((t) => Math.round(t - began))) + " ms, total " + Math.round(total) + " ms");
  results.spans = spans;
});

writeFileSync(join(process.env.RESULTS_DIR, "network.json"), JSON.stringify(results));
`;

let run: Run;

before(async () => {
  await buildGuest();
  const { mkdtemp } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const resultsDir = await mkdtemp(join(tmpdir(), "ntt-net-"));
  run = await runDriver(script, {
    nodes: [
      { name: "a", vlans: [1] },
      { name: "b", vlans: [1, 2] },
      { name: "c", vlans: [2] },
    ],
    args: ["--vlans", "1", "2"],
    env: { RESULTS_DIR: resultsDir },
  });
  (run as Run & { resultsDir: string }).resultsDir = resultsDir;
});

test("pings by name, vlan isolation, block/unblock all hold on real guests", () => {
  assert.equal(run.code, 0, run.output.slice(-4000));
});

test("two machines' commands run concurrently: each started before the other ended", async () => {
  const dir = (run as Run & { resultsDir: string }).resultsDir;
  const { spans } = JSON.parse(await readFile(join(dir, "network.json"), "utf8")) as { spans: Record<"a" | "c", [number, number]> };
  assert.ok(spans.a[0] < spans.c[1] && spans.c[0] < spans.a[1], `spans overlap: ${JSON.stringify(spans)}`);
});

test("no QEMU and no vde_switch is left", async () => {
  assert.equal(run.qemuPids.length, 3);
  assert.deepEqual(await survivors(run.qemuPids), []);
  const vde = run.output.match(/vde_switch running \(pid (\d+)/g) ?? [];
  assert.equal(vde.length, 2, "two switches were started");
  assert.deepEqual(await survivors(vde.map((m) => Number(/\d+/.exec(m)?.[0]))), []);
});
