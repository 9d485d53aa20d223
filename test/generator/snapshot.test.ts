// The check's startup snapshot (generator/snapshot.ts): a check started from it finds and prints exactly what a
// check without it does, and the CLI falls back to an ordinary check whenever the snapshot cannot be used.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, copyFile, link, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { formatFindings, summary } from "../../generator/diagnostics.js";
import { currentSnapshot, usableSnapshot } from "../../generator/snapshot.js";
import { check } from "../../generator/pipeline.js";
import { CLI, TWO_NODES, runCli, testDir, type CliRun } from "./helpers.js";

const CHECK = ["check", "--manifest", "manifest.json", "--out", "out", "--timings", "test.ts"];

/** How many declaration files the check took from the snapshot (its --timings line); 0 when not started from one. */
function fromSnapshot(r: CliRun): number {
  const m = /declaration files already parsed \(startup snapshot: (yes|no)\): (\d+)/.exec(r.stderr);
  assert.ok(m, r.output);
  return m[1] === "yes" ? Number(m[2]) : 0;
}

/** The findings and the summary, without the timings (which differ). */
const findings = (r: CliRun): string => r.stderr.slice(0, r.stderr.indexOf("timings:"));

test("the build made a snapshot for this Node and TypeScript (npm run build)", () => {
  assert.ok(usableSnapshot() !== undefined, "no startup snapshot: `npm run build` (tsc, then node dist/generator/snapshot.js) makes it");
});

test("from the snapshot: the same findings at the user's file and line, and the same JS, as a check without it", async () => {
  // This test process was not started from the snapshot: its in-process check is the reference.
  assert.equal(currentSnapshot(), undefined);
  const lines = ["await startAll();", 'await client.waitForUnit("nginx.service");', "const n: number = await server.succeed('x');", "server.succeed('y');"];
  const t = await testDir(TWO_NODES, lines, { generated: true });
  const snap = await runCli(CHECK, { cwd: t.dir });
  assert.ok(fromSnapshot(snap) > 10, `the lib and runtime declarations come from the snapshot:\n${snap.output}`);
  assert.equal(snap.code, 1, snap.output);
  assert.match(snap.stderr, /^test\.ts:2:26 error lint\/unknown-unit node client declares no unit `nginx\.service`/m);
  assert.match(snap.stderr, /^test\.ts:3:7 error TS2322 Type 'string' is not assignable to type 'number'/m);
  assert.match(snap.stderr, /^test\.ts:4:1 error lint\/floating-promise /m);
  const reference = await check({ manifestPath: t.manifest, outDir: join(t.dir, "out-plain"), script: t.script, command: "nixos-test-ts generate" });
  assert.equal(reference.result.reusedDeclarations, 0);
  assert.equal(findings(snap), `${formatFindings(reference.result.findings, t.dir)}\nnixos-test-ts: test.ts: ${summary(reference.result.findings)}\n`);

  const ok = await testDir(TWO_NODES, ["await startAll();", 'await server.waitForUnit("nginx.service");', "log(await client.succeed('true'));"], {
    generated: true,
  });
  const okSnap = await runCli(CHECK, { cwd: ok.dir });
  assert.equal(okSnap.code, 0, okSnap.output);
  assert.ok(fromSnapshot(okSnap) > 10, okSnap.output);
  const okReference = await check({ manifestPath: ok.manifest, outDir: join(ok.dir, "out-plain"), script: ok.script, command: "nixos-test-ts generate" });
  assert.equal(okReference.result.errors, 0);
  // The generated module's header names the command that made it; the script's JS and map must be the same.
  for (const file of ["test.js", "test.js.map"]) {
    assert.equal(await readFile(join(ok.out, file), "utf8"), await readFile(join(ok.dir, "out-plain", file), "utf8"), file);
  }
});

test("bin/nixos-test-ts starts Node from the snapshot itself (one Node, not two) with the same findings; NIXOS_TEST_TS_SNAPSHOT=0 and other commands run the CLI as it is", async () => {
  const t = await testDir(TWO_NODES, ["await startAll();", 'await client.waitForUnit("nginx.service");'], { generated: true });
  const direct = await runCli(CHECK, { cwd: t.dir });
  assert.equal(direct.code, 1, direct.output);
  assert.ok(fromSnapshot(direct) > 10, direct.output);
  assert.match(direct.stderr, /Node started directly \(bin\/nixos-test-ts\)/);
  const relaunched = await runCli(CHECK, { cwd: t.dir, viaNode: true });
  assert.match(relaunched.stderr, /Node started by a first Node/);
  assert.equal(findings(direct), findings(relaunched));
  // Turned off: the choice is what is tested here (the test above compares the findings without the snapshot).
  const off = await runCli([...CHECK, "--skip-type-check"], { cwd: t.dir, env: { ...process.env, NIXOS_TEST_TS_SNAPSHOT: "0" } });
  assert.equal(fromSnapshot(off), 0, off.output);
  assert.match(off.stderr, /^test\.ts:2:26 error lint\/unknown-unit /m);
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0, help.output);
  assert.match(help.stdout, /^Usage: nixos-test-ts/m);
});

test("bin/nixos-test-ts with another Node on PATH than the one the snapshot was built by: that Node checks, without it", async () => {
  const t = await testDir(TWO_NODES, ["await startAll();", 'await server.waitForUnit("nginx.service");'], { generated: true });
  const bin = await mkdtemp(join(tmpdir(), "ntt-other-node-"));
  try {
    // The same binary under another name: a hard link where the file system allows one (no 100 MB copy).
    await link(process.execPath, join(bin, "node")).catch(() => copyFile(process.execPath, join(bin, "node")));
    await chmod(join(bin, "node"), 0o755);
    // The choice is what is tested (a full check without the snapshot is the reference of the test above): no type check.
    const r = await runCli([...CHECK, "--skip-type-check"], { cwd: t.dir, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    assert.equal(r.code, 0, r.output);
    assert.equal(fromSnapshot(r), 0, "no snapshot was built by this Node");
  } finally {
    await rm(bin, { recursive: true, force: true });
  }
});

test("a Node started from another snapshot than the one this TypeScript would use (the launcher after an update without a build) hands the check to a new Node", async () => {
  const blob = usableSnapshot();
  assert.ok(blob !== undefined);
  const t = await testDir(TWO_NODES, ["await startAll();", 'await client.waitForUnit("nginx.service");'], { generated: true });
  const other = join(t.dir, "other.blob");
  await copyFile(blob, other);
  const child = spawnSync(process.execPath, ["--snapshot-blob", other, CLI, ...CHECK], { cwd: t.dir, encoding: "utf8" });
  const r = { code: child.status, signal: null, stdout: child.stdout, stderr: child.stderr, output: child.stdout + child.stderr, pid: child.pid };
  assert.equal(r.code, 1, r.output);
  assert.match(r.stderr, /^test\.ts:2:26 error lint\/unknown-unit /m);
  assert.match(r.stderr, /Node started by a first Node/, "the current snapshot, started anew");
});

test("a Node started with V8 flags (which the snapshot would refuse) checks without the snapshot, and passes", async () => {
  const t = await testDir(TWO_NODES, ["await startAll();", 'await server.waitForUnit("nginx.service");'], { generated: true });
  const viaOptions = await runCli([...CHECK, "--skip-type-check"], { cwd: t.dir, env: { ...process.env, NODE_OPTIONS: "--max-old-space-size=1024" } });
  assert.equal(viaOptions.code, 0, viaOptions.output);
  assert.equal(fromSnapshot(viaOptions), 0);
});

test("--node-types (other compiler options) does not take the snapshot's declarations", async () => {
  // Whether the check then types node:fs is check.test's (in process); here: which declarations the CLI takes.
  const t = await testDir(TWO_NODES, ["import { readFileSync } from 'node:fs';", "log(readFileSync('/etc/hostname', 'utf8').trim());"], { generated: true });
  const r = await runCli([...CHECK, "--node-types", "--skip-type-check"], { cwd: t.dir });
  assert.equal(r.code, 0, r.output);
  assert.equal(fromSnapshot(r), 0, "the snapshot's files were made with other options");
});

test("in one process a check reuses the declaration files an earlier one parsed, unless their text changed", async () => {
  const t = await testDir(TWO_NODES, ['import { port } from "./settings.js";', "const p: string = port;", "log(p);"]);
  await writeFile(join(t.dir, "settings.d.ts"), "export declare const port: number;\n");
  const run = () => check({ manifestPath: t.manifest, outDir: t.out, script: t.script, command: "nixos-test-ts generate", emit: false });
  const first = (await run()).result;
  assert.match(first.findings.map((f) => `${f.location?.line} ${f.code}`).join("\n"), /^2 TS2322$/m);
  const second = (await run()).result;
  assert.ok(second.reusedDeclarations > 10, `${second.reusedDeclarations} declaration files reused`);
  assert.deepEqual(second.findings, first.findings);
  // The user's own declarations changed on disk: the check sees the new text, not the parsed old one.
  await writeFile(join(t.dir, "settings.d.ts"), "export declare const port: string;\n");
  const third = (await run()).result;
  assert.deepEqual(third.findings, []);
});

test("a script's global augmentation does not leak into the shared lib declarations of later checks", async () => {
  const augmenting = await testDir(TWO_NODES, [
    "declare global {",
    "  interface Array<T> { firstOrNull(): T | null }",
    "}",
    "const n: number | null = [1].firstOrNull();",
    "log(String(n));",
  ]);
  const plain = await testDir(TWO_NODES, ["const n: number | null = [1].firstOrNull();", "log(String(n));"]);
  const run = (t: typeof plain) => check({ manifestPath: t.manifest, outDir: t.out, script: t.script, command: "nixos-test-ts generate", emit: false });
  for (let round = 0; round < 2; round++) {
    assert.deepEqual((await run(augmenting)).result.findings, [], `round ${round}`);
    const without = (await run(plain)).result;
    assert.deepEqual(
      without.findings.map((f) => `${f.location?.line} ${f.code}`),
      ["1 TS2339"],
      `round ${round}: firstOrNull exists only where it is declared`,
    );
  }
  // And from the snapshot, whose lib files were bound (and used by its warm-up check) at build time.
  const r = await runCli(["check", "--manifest", "manifest.json", "--out", "out", "--timings", "test.ts"], { cwd: plain.dir });
  assert.equal(r.code, 1, r.output);
  assert.ok(fromSnapshot(r) > 10, r.output);
  assert.match(r.stderr, /^test\.ts:1:30 error TS2339 Property 'firstOrNull' does not exist/m);
});
