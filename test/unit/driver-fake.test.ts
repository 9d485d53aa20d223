// The real CLI, driver, Machine and backdoor protocol against fake guests
// (test/fake-guest: a local bash behind the same sockets QEMU offers), so the
// driver's logic is tested in seconds. What only a real guest can show (the
// console's losses, a kernel's process tree, booting) stays in test/e2e.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { assertWellFormed, runDriver, survivors, type RunOptions } from "../e2e/harness.js";

const fake = (options: RunOptions = {}): RunOptions => ({ guest: "fake", limit: 60, ...options });
const two = [
  { name: "a", vlans: [] },
  { name: "b", vlans: [] },
];

// The cases are independent (each its own driver, fake guests and directories) and mostly wait: four at a time.
describe("the driver on fake guests", { concurrency: 4 }, () => {
  test("commands: output, exit codes, binary bytes, 5 MB intact, two machines at once, the shared directory", async () => {
    const run = await runDriver(
      `
const { createHash } = await import("node:crypto");
const { writeFileSync, readFileSync } = await import("node:fs");
await startAll();
if ((await a.succeed("hostname")) !== "a\\n" || (await b.succeed("hostname")) !== "b\\n") throw new Error("hostnames");
const r = await a.execute("echo out; exit 7");
if (r.exitCode !== 7 || r.output !== "out\\n") throw new Error("execute: " + JSON.stringify(r));
await a.fail("false");
const bin = await a.execute("printf '\\\\000\\\\001\\\\377\\\\376'");
if (Buffer.compare(bin.bytes, Buffer.from([0, 1, 255, 254])) !== 0) throw new Error("bytes: " + bin.bytes.toString("hex"));
const big = await a.execute("head -c 5000000 /dev/urandom | tee /tmp/big; sha256sum < /tmp/big >&2");
const sum = (await a.succeed("sha256sum < /tmp/big")).split(" ")[0];
if (createHash("sha256").update(big.bytes).digest("hex") !== sum) throw new Error("5 MB differ");
const [ta, tb] = await Promise.all([a.succeed("date +%s.%N; sleep 1; date +%s.%N"), b.succeed("date +%s.%N; sleep 1; date +%s.%N")]);
const [a0, a1] = ta.trim().split("\\n").map(Number), [b0, b1] = tb.trim().split("\\n").map(Number);
if (!(a0 < b1 && b0 < a1)) throw new Error("the two machines did not overlap: " + [a0, a1, b0, b1]);
await a.succeed("echo from-a > /tmp/shared/note");
if ((await b.succeed("cat /tmp/shared/note")) !== "from-a\\n") throw new Error("shared dir");
writeFileSync("host-file", "from-host");
await a.copyFromHost("host-file", "/tmp/copied");
if ((await a.succeed("cat /tmp/copied")) !== "from-host") throw new Error("copyFromHost");
await a.succeed("echo from-guest > /tmp/out-file");
await a.copyFromMachine("/tmp/out-file");
log("commands ok");
`,
      fake({ nodes: two }),
    );
    assert.equal(run.code, 0, run.output.slice(-3000));
    assert.match(run.output, /commands ok/);
    assert.equal(await readFile(join(run.outDir, "out-file"), "utf8"), "from-guest\n");
    assert.deepEqual(await survivors(run.qemuPids), []);
  });

  test("a guest-side timeout kills the command's process tree; execute says timedOut; the next command works", async () => {
    const run = await runDriver(
      `
const r = await machine.execute("sh -c 'sleep 4711 & sleep 4712; echo never'", { timeout: 1 });
if (r.exitCode !== 124 || !r.timedOut) throw new Error(JSON.stringify(r));
const left = await machine.execute("pgrep -f 'sleep 471[12]'");
if (left.exitCode === 0) throw new Error("left behind: " + left.output);
try { await machine.succeed("sleep 4713", { timeout: 1 }); throw new Error("no TimeoutError"); }
catch (e) { if (e.name !== "TimeoutError") throw e; log("timeout says: " + e.message.split("\\n")[0]); }
log("next: " + (await machine.succeed("echo works")).trim());
`,
      fake(),
    );
    assert.equal(run.code, 0, run.output.slice(-3000));
    assert.match(run.output, /timeout says: machine: command `sleep 4713` timed out after 1 s/);
    assert.match(run.output, /next: works/);
  });

  test("a failing command fails the test naming machine, command, exit code, output and the script's line; XML and JUnit complete", async () => {
    const run = await runDriver(
      `await subtest("setup", async () => { await machine.succeed("true"); });
await subtest("breaks", async () => {
  await machine.succeed("echo first line; echo last words; exit 3");
});`,
      fake({ args: ["--junit-xml", "junit.xml"] }),
    );
    assert.equal(run.code, 1);
    assert.match(run.output, /CommandFailedError: machine: command `echo first line; echo last words; exit 3` failed \(exit code 3\)/);
    assert.match(run.output, /last words/);
    assert.match(run.output, /test\.mjs:3:\d+/);
    const xml = await run.xml();
    assertWellFormed(xml);
    assert.match(xml, /setup/);
    assert.match(xml, /breaks/);
    const junit = await readFile(join(run.outDir, "junit.xml"), "utf8");
    assert.match(junit, /<testcase[^>]*name="setup"/);
    assert.match(junit, /<testcase[^>]*name="breaks"[^>]*>\s*<failure/);
  });

  test("an exception thrown by the script fails the test with its stack; the log is complete", async () => {
    const run = await runDriver('await machine.succeed("true");\nthrow new Error("the script gave up");\n', fake());
    assert.equal(run.code, 1);
    assert.match(run.output, /Error: the script gave up/);
    assert.match(run.output, /test\.mjs:2/);
    assertWellFormed(await run.xml());
    assert.deepEqual(await survivors(run.qemuPids), []);
  });

  test("an exception thrown in a subtest: exit 1, the subtest's failure in the XML log", async () => {
    const run = await runDriver(
      [
        'await machine.succeed("true");',
        'await subtest("the script gives up", async () => {',
        '  throw new Error("thrown on purpose in a subtest");',
        "});",
      ].join("\n"),
      fake(),
    );
    assert.equal(run.code, 1, run.output.slice(-3000));
    assert.match(run.output, /Error: thrown on purpose in a subtest/);
    assert.match(run.output, /test\.mjs:3/, "the stack points at the throw");
    assert.match(run.output, /Test "the script gives up" failed with error: "thrown on purpose in a subtest"/);
    const xml = await run.xml();
    assertWellFormed(xml);
    assert.match(xml, /Test (?:"|&quot;)the script gives up(?:"|&quot;) failed with error: (?:"|&quot;)thrown on purpose in a subtest/);
    assert.match(xml, /\(failed: subtest: the script gives up, in \d+\.\d+ seconds\)/);
    assert.deepEqual(await survivors(run.qemuPids), []);
  });

  test("the machine dies during a command: MachineCrashedError at once, the log complete, nothing left", async () => {
    let killed = false;
    const run = await runDriver(`await machine.succeed("sleep 600");`, {
      ...fake(),
      onOutput: (text) => {
        const pid = /QEMU running \(pid (\d+)\)/.exec(text)?.[1];
        if (!killed && pid !== undefined && text.includes("must succeed: sleep 600")) {
          killed = true;
          setTimeout(() => process.kill(Number(pid), "SIGKILL"), 300);
        }
      },
    });
    assert.ok(killed);
    assert.equal(run.code, 1, run.output.slice(-3000));
    assert.match(run.output, /MachineCrashedError: machine: .*(crashed|exited|killed)/i);
    assertWellFormed(await run.xml());
    assert.deepEqual(await survivors(run.qemuPids), []);
  });

  test("the global timeout ends two waiting machines: exit 1, a message, the log complete, nothing left", async () => {
    const run = await runDriver(
      `await Promise.all([a.waitUntilSucceeds("test -e /never"), b.succeed("sleep 600")]);`,
      fake({ nodes: two, args: ["--global-timeout", "3"] }),
    );
    assert.equal(run.code, 1, run.output.slice(-3000));
    assert.match(run.output, /global timeout/i);
    assertWellFormed(await run.xml());
    assert.equal(run.qemuPids.length, 2);
    assert.deepEqual(await survivors(run.qemuPids), []);
  });

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    test(`${signal} during a wait: exit ${signal === "SIGINT" ? 130 : 143}, a complete log, nothing left`, async () => {
      let sent = false;
      const run = await runDriver('await machine.waitUntilSucceeds("test -e /never", { timeout: 600 });', {
        ...fake(),
        onOutput: (text, child) => {
          if (!sent && text.includes("waiting for success: test -e /never")) {
            sent = true;
            setTimeout(() => child.kill(signal), 300);
          }
        },
      });
      assert.ok(sent, "the wait began");
      assert.equal(run.code, signal === "SIGINT" ? 130 : 143, run.output.slice(-2000));
      assert.match(run.output, new RegExp(`interrupted by ${signal}`));
      assertWellFormed(await run.xml());
      assert.deepEqual(await survivors(run.qemuPids), []);
    });
  }

  test("a slow host reader gets every byte through flow control", async () => {
    const script = `
const r = await machine.execute("head -c 1500000 /dev/urandom | tee /tmp/big > /dev/null; cat /tmp/big");
const sum = (await machine.succeed("sha256sum /tmp/big | cut -d' ' -f1")).trim();
const { createHash } = await import("node:crypto");
if (createHash("sha256").update(r.bytes).digest("hex") !== sum) throw new Error("checksum mismatch");
log("output intact: " + r.bytes.length);`;
    const slow = await runDriver(script, fake({ env: { NTT_TEST_SHELL_READ_DELAY_MS: "5" } }));
    assert.equal(slow.code, 0, slow.output.slice(-2000));
    assert.match(slow.output, /output intact: 1500000/);
  });

  test("shutdown, then start again; waitForShutdown; isUp", async () => {
    const run = await runDriver(
      `
await machine.succeed("echo one > /tmp/shared/boot");
await machine.shutdown();
if (machine.isUp()) throw new Error("up after shutdown");
await machine.start();
await machine.succeed("grep one /tmp/shared/boot");
const waited = machine.waitForShutdown();
await machine.execute("(sleep 0.5; poweroff) >/dev/null 2>&1 &");
await waited;
log("lifecycle ok");`,
      fake(),
    );
    assert.equal(run.code, 0, run.output.slice(-3000));
    assert.match(run.output, /lifecycle ok/);
    assert.equal(run.qemuPids.length, 2);
    assert.deepEqual(await survivors(run.qemuPids), []);
  });

  test("switchRoot: initrd.target, the isolate, systemd's line, then the new backdoor shell is set up and answers", async () => {
    const run = await runDriver(
      `
await machine.succeed("echo stage-1 > /tmp/stage");
await machine.switchRoot({ timeout: 30 });
const r = await machine.execute("cat /tmp/stage");
if (r.exitCode === 0) throw new Error("still the first shell's /tmp: " + r.output);
log("after the switch: " + (await machine.succeed("echo stage-2")).trim());`,
      fake(),
    );
    assert.equal(run.code, 0, run.output.slice(-3000));
    assert.match(run.output, /switching root/);
    assert.match(run.output, /systemd\[1\]: Switching root\./);
    assert.match(run.output, /after the switch: stage-2/);
    assert.deepEqual(await survivors(run.qemuPids), []);
  });

  test("QMP: a command QEMU refuses is a QmpError with a stable code; getMachine of a typo is a UsageError", async () => {
    const run = await runDriver(
      `
import { QmpError, getMachine } from "nixos-test-ts";
await machine.start();
const s = await machine.qmp.execute("query-status");
if (s.status !== "running") throw new Error("query-status: " + JSON.stringify(s));
const e = await machine.qmp.execute("no-such-command").then(() => undefined, (x) => x);
if (!(e instanceof QmpError) || e.code !== "NTT_QMP" || e.errorClass !== "CommandNotFound") throw new Error("not a QmpError: " + e);
try { getMachine("machin"); throw new Error("no error"); } catch (x) { if (x.code !== "NTT_USAGE") throw x; log("typo says: " + x.message); }
log("qmp ok");`,
      fake(),
    );
    assert.equal(run.code, 0, run.output.slice(-3000));
    assert.match(run.output, /typo says: no machine named "machin"; this test has: machine/);
    assert.match(run.output, /qmp ok/);
  });
});
