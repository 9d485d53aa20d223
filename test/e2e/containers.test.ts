// systemd-nspawn containers of the "container" guest (Debian, systemd), run
// through the real CLI inside a network namespace of their own
// (`unshare --net`), as a Nix build sandbox would isolate them. One run
// boots two containers on vlan 1 and checks the everyday methods; two more
// runs end by SIGINT and by the global timeout; one puts a tiny VM and a
// container on one vlan. After each run nothing may be left: no nspawn, no
// netns, no veth or bridge (counted inside the namespace before it goes), no
// cgroup, and the root namespace has the links it had.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { buildGuest, writeNspawnStartScripts, writeStartScripts, type GuestNode } from "../guests/start-scripts.js";
import { CLI } from "./harness.js";

const rootLinks = (): string =>
  execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" })
    .replace(/\s+link\/.*$/gm, "")
    .split("\n")
    .map((l) => l.split(":")[1]?.trim())
    .sort()
    .join(" ");

/** Counted inside the test's network namespace after the driver exited (the namespace dies with the shell). */
const WRAPPER = `
ip link set lo up
"$@" &
pid=$!
trap 'kill -INT $pid' INT
trap 'kill -TERM $pid' TERM
rc=0
while kill -0 $pid 2> /dev/null; do wait $pid; rc=$?; done
echo "NTT-LEFT-LINKS: [$(ip -o link show | grep -v ': lo:' | cut -d: -f2 | tr -d ' \\n')]"
exit $rc
`;

interface Run {
  code: number | null;
  output: string;
  dir: string;
  seconds: number;
}

async function runContainers(
  script: string,
  containers: GuestNode[],
  options: { vms?: GuestNode[]; args?: string[]; limit?: number; onOutput?: (out: string, pid: number) => void } = {},
): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), "ntt-containers-"));
  const vms = options.vms ?? [];
  const all = [...vms, ...containers];
  const vmScripts = vms.length === 0 ? {} : await writeStartScripts(dir, all, { guest: "tiny" });
  const nspawn = await writeNspawnStartScripts(dir, containers, vms);
  const scriptPath = join(dir, "test.mjs");
  await writeFile(scriptPath, script);
  const args = [
    ...(vms.length > 0 ? ["--start-scripts", ...vms.map((v) => vmScripts[v.name] as string)] : []),
    "--container-start-scripts",
    ...Object.values(nspawn),
    "--vlans",
    ...[...new Set(all.flatMap((n) => n.vlans))].map(String),
    "-o",
    join(dir, "out"),
    ...(options.args ?? []),
    scriptPath,
  ];
  const began = performance.now();
  const child = spawn("unshare", ["--net", "--", "sh", "-c", WRAPPER, "sh", process.execPath, CLI, ...args], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    options.onOutput?.(output, child.pid ?? -1);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const limit = setTimeout(
    () => {
      output += "\n[test: the driver outlived its limit; SIGKILL]\n";
      child.kill("SIGKILL");
    },
    (options.limit ?? 300) * 1000,
  );
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  clearTimeout(limit);
  await writeFile(join(dir, "driver-output.log"), output);
  return { code, output, dir, seconds: (performance.now() - began) / 1000 };
}

/** What a run may not leave behind, checked from outside. */
function assertNothingLeft(run: Run, linksBefore: string): void {
  assert.match(run.output, /NTT-LEFT-LINKS: \[\]/, "no veth, bridge or tap left in the test's namespace");
  assert.equal(rootLinks(), linksBefore, "the root network namespace has the links it had");
  const netns = existsSync("/run/netns") ? readdirSync("/run/netns").filter((n) => n.startsWith("nixos-nspawn-")) : [];
  assert.deepEqual(netns, [], "no network namespace left in /run/netns");
  for (const base of ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"]) {
    if (!existsSync(base)) continue;
    const left = readdirSync(base).filter((n) => n.startsWith("ntt-nspawn-"));
    assert.deepEqual(left, [], `no cgroup left in ${base}`);
  }
  const nspawns = readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const cmdline = readFileSync(`/proc/${p}/cmdline`, "utf8");
        return cmdline.startsWith("systemd-nspawn") && cmdline.includes(run.dir) ? [p] : [];
      } catch {
        return [];
      }
    });
  assert.deepEqual(nspawns, [], "no systemd-nspawn of this run is left");
}

const script = String.raw`
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
const results = {};
// Live sleeps only: a killed one may be a zombie for a moment until the container's init reaps it.
const liveSleeps = "ps -eo stat=,comm= | awk '$2 == \"sleep\" && $1 !~ /^Z/' | grep -q .";
const t0 = performance.now();
await startAll();

await subtest("hostnames, units, ports, a web page by name", async () => {
  assert.equal(await db.succeed("hostname"), "db\n");
  assert.equal(await web.succeed("hostname"), "web\n");
  await db.waitForUnit("www.service");
  results.readySeconds = (performance.now() - t0) / 1000;
  await db.waitForOpenPort(80);
  assert.match(await web.succeed("busybox wget -qO- http://db/"), /Hello from db/);
  assert.match(await db.succeed("ip -4 addr show eth1"), /192\.168\.1\.1\/24/);
});

await subtest("a failing unit is reported at once with its journal", async () => {
  const began = performance.now();
  const error = await db.waitForUnit("broken.service").then(() => undefined, (e) => e);
  results.failingUnitSeconds = (performance.now() - began) / 1000;
  assert.equal(error?.code, "NTT_UNIT_FAILED");
  assert.match(error.message, /about to fail/);
});

await subtest("exit codes and binary output", async () => {
  assert.equal((await db.execute("exit 7")).exitCode, 7);
  await assert.rejects(db.succeed("false"), /exit code 1/);
  assert.equal(await db.fail("false"), "");
  const r = await db.execute("printf \"$(printf '\\\\%03o' $(seq 0 255))\"");
  assert.deepEqual([...r.bytes], [...Array(256).keys()]);
  const big = await db.execute("head -c 3000000 /dev/zero | tr '\\0' x");
  assert.equal(big.bytes.length, 3000000);
  assert.equal(await db.succeed("echo $PATH | grep -c /usr/bin"), "1\n", "the prelude sourced /etc/profile");
});

await subtest("a timeout kills the command's tree; the next command works", async () => {
  const r = await db.execute("sleep 1000 & sleep 1001; echo never", { timeout: 2 });
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, 124);
  assert.equal((await db.execute(liveSleeps)).exitCode, 1, "no sleep survived");
  assert.equal(await db.succeed("echo next"), "next\n");
});

await subtest("commands to one machine queue, to two machines overlap", async () => {
  const began = performance.now();
  await Promise.all([db.succeed("sleep 1"), web.succeed("sleep 1")]);
  results.overlapSeconds = (performance.now() - began) / 1000;
});

await subtest("cancellation", async () => {
  const controller = new AbortController();
  const p = db.execute("sleep 1000", { signal: controller.signal });
  setTimeout(() => controller.abort(new Error("cancelled by the test")), 300);
  await assert.rejects(p, /cancelled by the test/);
  assert.equal((await db.execute(liveSleeps)).exitCode, 1, "the cancelled command is gone");
});

await subtest("copy through the shared directory", async () => {
  const file = join(process.cwd(), "hello.txt");
  writeFileSync(file, "from the host\n");
  await db.copyFromHost(file, "/root/in/hello.txt");
  assert.equal(await db.succeed("cat /root/in/hello.txt"), "from the host\n");
  await db.succeed("echo from the container > /root/out.txt");
  results.copied = await db.copyFromMachine("/root/out.txt", "copied");
});

await subtest("VM-only methods are clear errors", async () => {
  await assert.rejects(db.screenshot("x"), (e) => e.code === "NTT_UNSUPPORTED" && /screenshot\(\) is not available on a container machine/.test(e.message));
  await assert.rejects(db.sendKey("ret"), /sendKey\(\) is not available on a container/);
});

await subtest("crash during a command, start again, shutdown", async () => {
  const running = db.execute("sleep 1000");
  running.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 500));
  const began = performance.now();
  await db.crash();
  const error = await running.then(() => undefined, (e) => e);
  results.crashSeconds = (performance.now() - began) / 1000;
  assert.equal(error?.code, "NTT_MACHINE_CRASHED", String(error));
  await db.start();
  await db.waitForUnit("www.service");
  assert.equal(await db.succeed("hostname"), "db\n");
  await web.shutdown();
  assert.equal(web.booted, false);
  results.consoleHasJournal = /Startup finished/.test(db.getConsoleLog());
});

writeFileSync(join(process.cwd(), "results.json"), JSON.stringify(results));
`;

let linksBefore = "";
before(async () => {
  await buildGuest("container");
  await buildGuest("tiny");
  linksBefore = rootLinks();
});

test("two containers on vlan 1: the everyday methods, crash, restart, shutdown; nothing left", async () => {
  const run = await runContainers(script, [
    { name: "db", vlans: [1] },
    { name: "web", vlans: [1] },
  ]);
  assert.equal(run.code, 0, run.output.slice(-6000));
  const results = JSON.parse(await readFile(join(run.dir, "results.json"), "utf8")) as Record<string, unknown>;
  console.log(`figures: ${JSON.stringify(results)}, whole run ${run.seconds.toFixed(1)} s`);
  assert.ok((results.failingUnitSeconds as number) < 10, "the failing unit is reported without waiting for a timeout");
  assert.ok((results.overlapSeconds as number) < 1.9, "two machines ran their commands at the same time");
  assert.ok((results.crashSeconds as number) < 5, "the crash ended the running command at once");
  assert.equal(results.consoleHasJournal, true, "the console log carries the boot and the journal");
  assert.equal(readFileSync(join(run.dir, "out", "copied", "out.txt"), "utf8"), "from the container\n");
  assertNothingLeft(run, linksBefore);
});

const hang = String.raw`
await startAll();
await db.waitForUnit("www.service");
await web.waitForUnit("www.service");
console.log("NTT-BOTH-UP");
await db.succeed("sleep 1000");
`;

test("SIGINT while commands run leaves nothing behind", async () => {
  let sent = false;
  const run = await runContainers(
    hang,
    [
      { name: "db", vlans: [1] },
      { name: "web", vlans: [1] },
    ],
    {
      onOutput: (out, pid) => {
        if (!sent && out.includes("NTT-BOTH-UP")) {
          sent = true;
          setTimeout(() => process.kill(pid, "SIGINT"), 500);
        }
      },
      limit: 120,
    },
  );
  assert.ok(sent, run.output.slice(-4000));
  assert.notEqual(run.code, 0);
  assertNothingLeft(run, linksBefore);
});

test("the global timeout ends the run and leaves nothing behind", async () => {
  const run = await runContainers(
    hang,
    [
      { name: "db", vlans: [1] },
      { name: "web", vlans: [1] },
    ],
    { args: ["--global-timeout", "20"], limit: 120 },
  );
  assert.notEqual(run.code, 0);
  assert.match(run.output, /global timeout/);
  assertNothingLeft(run, linksBefore);
});

test("a VM and a container on one vlan ping each other", async () => {
  const run = await runContainers(
    String.raw`
await startAll();
await vm.connect();
await c.connect();
await c.waitUntilSucceeds("ping -c1 -W 2 vm", { timeout: 60 });
await vm.succeed("ping -c1 -W 5 c");
await vm.succeed("ping -c1 -W 5 192.168.1.254");
`,
    [{ name: "c", vlans: [1] }],
    { vms: [{ name: "vm", vlans: [1] }], limit: 400 },
  );
  assert.equal(run.code, 0, run.output.slice(-6000));
  assertNothingLeft(run, linksBefore);
});

test("a container start script that exits before readiness: the error names the machine and shows the script's output", async () => {
  const dir = await mkdtemp(join(tmpdir(), "ntt-containers-"));
  const script = join(dir, "run-broken-nspawn");
  await writeFile(script, '#!/bin/sh\necho "broken: no root at $RUN_NSPAWN_ROOT_DIR" >&2\nexit 3\n', { mode: 0o755 });
  await writeFile(join(dir, "test.mjs"), "await broken.succeed('true');\n");
  const child = spawn("unshare", ["--net", "--", process.execPath, CLI, "--container-start-scripts", script, "-o", join(dir, "out"), join(dir, "test.mjs")], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(code, 1, output);
  assert.match(output, /MachineCrashedError: broken: systemd-nspawn exited with status 3 while starting/);
  assert.match(output, /broken: no root at .*container-state-broken/);
});
