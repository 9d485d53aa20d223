// `nixos-test-ts run` checks a TypeScript test and runs it with the real driver, on two fake guests
// (test/fake-guest): what is tested is the pipeline (check, emit, source maps, globals, signals), not a VM.
import assert from "node:assert/strict";
import { test } from "node:test";
import { writeFakeStartScripts } from "../fake-guest/start-scripts.js";
import { survivors } from "../e2e/harness.js";
import { runCli, testDir, type CliRun } from "../generator/helpers.js";

const MANIFEST = {
  name: "run-e2e",
  vlans: [1],
  nodes: {
    client: { vlans: [1], addresses: { "1": "192.168.1.1" }, units: [], ports: { tcp: [], udp: [] } },
    server: { vlans: [1], addresses: { "1": "192.168.1.2" }, units: [], ports: { tcp: [22], udp: [] } },
  },
  values: { greeting: "hello from the manifest", port: 22 },
};

/** Writes the test and fake start scripts for client and server, and runs it. */
async function run(lines: string[], onOutput?: (output: string, pid: number) => void): Promise<CliRun & { qemuPids: number[] }> {
  const t = await testDir(MANIFEST, lines, { generated: true });
  const scripts = await writeFakeStartScripts(t.dir, ["client", "server"]);
  const args = ["run", "--manifest", "manifest.json", "--out", "out", "test.ts", "--", "--start-scripts", ...Object.values(scripts), "-o", "driver-out"];
  const r = await runCli(args, {
    cwd: t.dir,
    limit: 240,
    ...(onOutput ? { onOutput } : {}),
  });
  const qemuPids = [...r.output.matchAll(/QEMU running \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  return { ...r, qemuPids };
}

test("a checked two-node script runs commands on both machines, with globals and imports", async () => {
  const r = await run([
    'import { server as importedServer, machines, runtimeUnit as hatch } from "./test.generated.js";',
    "",
    'const [c, s] = await Promise.all([client.succeed("hostname"), server.succeed("hostname")]);',
    'if (c !== "client\\n" || s !== "server\\n") throw new Error(`hostnames: ${JSON.stringify([c, s])}`);',
    'if (importedServer !== server || machines.client !== client) throw new Error("imports and globals differ");',
    'if (runtimeUnit("x.service") !== "x.service" || hatch !== runtimeUnit) throw new Error("runtimeUnit");',
    'if (vlan1.nr !== 1) throw new Error("vlan1");',
    "log(`both machines answered: ${c.trim()} ${s.trim()}`);",
    "// nixpkgs' names at run time: machines as a list and by name (globals and imports alike), t, log.*, values.",
    "const globalMachines = (globalThis as unknown as { machines: typeof machines }).machines;",
    't.assertEqual([...globalMachines].map((m) => m.name), ["client", "server"]);',
    "t.assertEqual(Object.values(machines).length, 2);",
    "t.assertIs(globalMachines.server, server);",
    'await log.nested("a nested block", async () => { log.info(`values: ${values.greeting} on ${values.port}`); });',
    'log.warning("a warning from the script");',
  ]);
  assert.equal(r.code, 0, r.output.slice(-4000));
  assert.match(r.output, /both machines answered: client server/);
  assert.match(r.output, /values: hello from the manifest on 22/);
  assert.match(r.output, /a nested block/);
  assert.equal(r.qemuPids.length, 2, r.output.slice(-4000));
  assert.deepEqual(await survivors(r.qemuPids), []);
});

test("a failing succeed reports the line of the user's test.ts (source maps)", async () => {
  const r = await run(["// the failure is on line 4", 'await client.succeed("true");', "", 'await server.succeed("echo about to fail; exit 3");']);
  assert.equal(r.code, 1, r.output.slice(-4000));
  assert.match(r.output, /CommandFailedError: server: command `echo about to fail; exit 3` failed \(exit code 3\)/);
  assert.match(r.output, /test\.ts:4:14/);
  assert.match(r.output, /4 \| await server\.succeed/);
  assert.deepEqual(await survivors(r.qemuPids), []);
});

test("an exception thrown by the script shows test.ts lines in its stack", async () => {
  const r = await run(["const why = 'given up';", "", "throw new Error(`the script ${why}`);"]);
  assert.equal(r.code, 1, r.output.slice(-4000));
  assert.match(r.output, /Error: the script given up/);
  assert.match(r.output, /test\.ts:3:7/);
});

test("SIGTERM to nixos-test-ts run reaches the driver, which stops its VMs", async () => {
  let sent = false;
  const r = await run(['await server.succeed("true");', 'log("ready for the signal");', 'await server.succeed("sleep 600");'], (output, pid) => {
    if (!sent && output.includes("ready for the signal")) {
      sent = true;
      process.kill(pid, "SIGTERM");
    }
  });
  assert.ok(sent, r.output.slice(-4000));
  assert.equal(r.code, 143, r.output.slice(-4000));
  assert.match(r.output, /received SIGTERM/);
  assert.deepEqual(await survivors(r.qemuPids), []);
});
