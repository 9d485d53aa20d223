// The nixos-test-ts CLI as a build uses it: exit codes, the printed diagnostics, the files it writes. The
// commands run in this process (runCliInProcess) except where the process is part of what is tested.
import assert from "node:assert/strict";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { TWO_NODES, runCli, runCliInProcess, testDir, tscProject } from "./helpers.js";

test("check: every error at once, at the user's file:line:col with a code frame, exit 1", async () => {
  const t = await testDir(
    TWO_NODES,
    ["await startAll();", "await machine3.succeed('x');", "", "  server.succeed('y');", 'await client.waitForUnit("nginx.service");'],
    { generated: true },
  );
  const r = await runCli(["check", "--manifest", "manifest.json", "--out", "out", "test.ts"], { cwd: t.dir });
  assert.equal(r.code, 1, r.output);
  assert.match(r.stderr, /^test\.ts:2:7 error TS2552 Cannot find name 'machine3'/m);
  assert.match(r.stderr, /^  2 \| await machine3\.succeed\('x'\);\n    \|       \^{8}$/m);
  assert.match(r.stderr, /^test\.ts:4:3 error lint\/floating-promise /m);
  assert.match(r.stderr, /^test\.ts:5:26 error lint\/unknown-unit node client declares no unit `nginx\.service`\. Node server has it/m);
  assert.match(r.stderr, /nixos-test-ts: test\.ts: 3 errors, 0 warnings$/m);
  assert.equal(existsSync(join(t.out, "test.js")), false, "no JS for a failed check");
});

test("check: an undeclared port is a warning (exit 0); --strict-ports makes it an error (exit 1)", async () => {
  const t = await testDir(TWO_NODES, ["await server.waitForOpenPort(80);", "await server.waitForOpenPort(8080);"], { generated: true });
  const lenient = await runCliInProcess(["check", "--manifest", "manifest.json", "--out", "out", "test.ts"], { cwd: t.dir });
  assert.equal(lenient.code, 0, lenient.stderr);
  assert.match(
    lenient.stderr,
    /^test\.ts:2:30 warning lint\/undeclared-port port 8080 is not open in the firewall of node server: its open TCP ports are 22, 80/m,
  );
  assert.match(lenient.stderr, /test\.ts: 0 errors, 1 warning; wrote out\/test\.js/);
  const strict = await runCliInProcess(["check", "--manifest", "manifest.json", "--out", "out", "--strict-ports", "test.ts"], { cwd: t.dir });
  assert.equal(strict.code, 1, strict.stderr);
  assert.match(strict.stderr, /^test\.ts:2:30 error lint\/undeclared-port port 8080/m);
});

test("check: --skip-lint and --skip-type-check, as nixpkgs' skipLint and skipTypeCheck", async () => {
  const t = await testDir(TWO_NODES, ["server.succeed('no await');", 'await server.waitForUnit("ngnix.service");'], { generated: true });
  const both = ["check", "--manifest", "manifest.json", "--out", "out", "test.ts"];
  const noLint = await runCliInProcess([...both, "--skip-lint"], { cwd: t.dir });
  assert.equal(noLint.code, 1, "the type error is still there");
  assert.match(noLint.stderr, /test\.ts: 1 error, 0 warnings/);
  assert.doesNotMatch(noLint.stderr, /lint\//);
  const noTypes = await runCliInProcess([...both, "--skip-type-check"], { cwd: t.dir });
  assert.equal(noTypes.code, 1, "the floating promise is still there");
  assert.match(noTypes.stderr, /test\.ts:1:1 error lint\/floating-promise/);
  assert.doesNotMatch(noTypes.stderr, /TS\d+/);
  const r = await runCliInProcess([...both, "--skip-lint", "--skip-type-check"], { cwd: t.dir });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(t.out, "test.js")));
});

test("check never starts a VM: it completes with no qemu on PATH, and a qemu there is never run", async () => {
  // `node cli.js`: bin/nixos-test-ts, like any `#!/usr/bin/env node` command, needs node on PATH, and node's own
  // directory may hold a QEMU.
  const t = await testDir(TWO_NODES, ["await startAll();", 'await Promise.all([server.waitForUnit("nginx.service"), client.succeed("true")]);'], {
    generated: true,
  });
  const bin = join(t.dir, "fake-bin");
  const marker = join(t.dir, "qemu-was-started");
  await mkdir(bin);
  for (const name of ["qemu-system-x86_64", "qemu-system-aarch64", "qemu-kvm", "vde_switch"]) {
    await writeFile(join(bin, name), `#!/bin/sh\ntouch ${marker}\nexit 1\n`);
    await chmod(join(bin, name), 0o755);
  }
  const started = Date.now();
  const r = await runCli(["check", "--manifest", "manifest.json", "--out", "out", "test.ts"], { cwd: t.dir, env: { PATH: bin, HOME: t.dir }, viaNode: true });
  assert.equal(r.code, 0, r.output);
  assert.ok(existsSync(join(t.out, "test.js")));
  assert.equal(existsSync(marker), false, "no VM program was started");
  assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
});

test("generate writes the module, the env declarations and a tsconfig with which tsc checks the script", async () => {
  const t = await testDir(TWO_NODES, [
    'import { server } from "./test.generated.js";',
    'await server.waitForUnit("nginx.service");',
    'await client.succeed("true");',
  ]);
  const r = await runCliInProcess(["generate", "--manifest", "manifest.json", "--out", "gen", "test.ts"], { cwd: t.dir });
  assert.equal(r.code, 0, r.stderr);
  const text = await readFile(join(t.dir, "gen", "test.generated.ts"), "utf8");
  assert.equal(
    text.split("\n")[0],
    "// DO NOT EDIT — generated by nixos-test-ts from manifest.json; regenerate with nixos-test-ts generate --manifest manifest.json --out gen test.ts",
  );
  const tsc = tscProject(join(t.dir, "gen"));
  assert.equal(tsc.status, 0, tsc.output);
  await writeFile(t.script, 'await server.waitForUnit("ngnix.service");\n');
  const bad = tscProject(join(t.dir, "gen"));
  assert.equal(bad.status, 2);
  assert.match(bad.output, /test\.ts\(1,26\): error TS2345/);
});

test("typings puts the bindings next to the script for the editor, and keeps a tsconfig.json the user wrote", async () => {
  const t = await testDir(TWO_NODES, ['await server.waitForUnit("nginx.service");', 'await client.waitForUnit(runtimeUnit("x.service"));']);
  const r = await runCliInProcess(["typings", "--manifest", "manifest.json", "test.ts"], { cwd: t.dir });
  assert.equal(r.code, 0, r.stderr);
  for (const f of ["test.generated.ts", "nixos-test-ts.env.d.ts", "tsconfig.json"]) assert.ok(existsSync(join(t.dir, f)), f);
  const tsc = tscProject(t.dir);
  assert.equal(tsc.status, 0, tsc.output);
  // Running it again refreshes our own tsconfig.json; one the user wrote is left alone.
  await writeFile(join(t.dir, "tsconfig.json"), '{ "compilerOptions": { "strict": true } }\n');
  const again = await runCliInProcess(["typings", "--manifest", "manifest.json", "test.ts"], { cwd: t.dir });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /kept your tsconfig\.json/);
  assert.equal(await readFile(join(t.dir, "tsconfig.json"), "utf8"), '{ "compilerOptions": { "strict": true } }\n');
});

test("a bad manifest or a missing script is a usage error (exit 2) that names the problem", async () => {
  const t = await testDir({ ...TWO_NODES, nodes: { server: { vlans: [1], units: ["nginx"], ports: { tcp: [], udp: [] } } } }, ["await server.succeed('x');"]);
  const r = await runCli(["check", "--manifest", "manifest.json", "--out", "out", "test.ts"], { cwd: t.dir });
  assert.equal(r.code, 2, r.output);
  assert.match(r.stderr, /manifest\.json: nodes\.server\.units\[0\] must be a systemd unit name ending in \.service.*got "nginx"/);
  const missing = await runCli(["check", "--manifest", "manifest.json", "--out", "out", "nope.ts"], { cwd: t.dir });
  assert.equal(missing.code, 2, missing.output);
  assert.match(missing.stderr, /test script not found: nope\.ts/);
});

test("run does not start the driver when the check fails", async () => {
  const t = await testDir(TWO_NODES, ["server.succeed('x');"], { generated: true });
  const r = await runCli(["run", "--manifest", "manifest.json", "--out", "out", "test.ts", "--", "--start-scripts", join(t.dir, "run-server-vm")], {
    cwd: t.dir,
  });
  assert.equal(r.code, 1, r.output);
  assert.match(r.stderr, /test\.ts:1:1 error lint\/floating-promise/);
  assert.doesNotMatch(r.output, /start script|QEMU/);
});
