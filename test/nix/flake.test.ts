// The whole Nix pipeline with real nix (Debian's nix-bin, flakes): the
// fixture flake (test/nix/fixture) builds nix/lib/driver.nix through the
// host-tools shim (test/nix/pkgs-shim.nix) on two tiny Debian guests:
// manifest → check (generate, type check, lint, emit) → driver → test run.
// One VM boot (two guests at once) for the whole file.
import assert from "node:assert/strict";
import { constants } from "node:fs";
import { access, cp, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { assertWellFormed } from "../e2e/harness.js";
import { buildGuest, writeStartScripts } from "../guests/start-scripts.js";
import { NIX_OPTIONS, REPO, buildUserLeftovers, nix, requireNix, sandboxOptions, stopAll, type NixResult } from "./helpers.js";

const SYSTEM = "x86_64-linux";
let dir = "";
let overrides: string[] = [];
let sandbox: string[] = [];
let originalScript = "";
const scriptPath = () => join(dir, "two-nodes", "test.ts");

before(async () => {
  requireNix();
  const guestDir = await buildGuest("tiny");
  dir = await mkdtemp(join(tmpdir(), "ntt-nix-fixture-"));
  await cp(join(REPO, "test", "nix", "fixture"), dir, { recursive: true });
  await writeStartScripts(join(dir, "vms"), [
    { name: "client", vlans: [1] },
    { name: "server", vlans: [1] },
  ]);
  await writeFile(
    join(dir, "host.json"),
    // salt: a test run must run the VMs, not find the last run's result in the store.
    JSON.stringify({
      guestDir,
      nodeModules: join(REPO, "node_modules"),
      node: process.execPath,
      hostPath: "/usr/local/bin:/usr/bin:/bin",
      salt: `${process.pid}-${Date.now()}`,
    }),
  );
  overrides = [
    ["nixos-test-ts-nix", join(REPO, "nix")],
    ["shim", join(REPO, "test", "nix")],
    ["dist", join(REPO, "dist")],
    ["guest", guestDir],
  ].flatMap(([input, path]) => ["--override-input", input as string, `path:${path}`]);
  sandbox = await sandboxOptions();
  originalScript = await readFile(scriptPath(), "utf8");
});

after(async () => {
  await stopAll();
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

/** `nix build` of an attribute of the fixture flake; resolves whatever the outcome. */
async function build(
  attr: string,
  extra: string[] = [],
  onStderr?: (stderr: string, interrupt: () => Promise<void>) => void,
): Promise<NixResult & { out: string | undefined }> {
  const r = await nix("nix", ["build", "-L", "--no-link", "--json", ...NIX_OPTIONS, ...sandbox, ...overrides, ...extra, `path:${dir}#${attr}`], {
    cwd: dir,
    timeout: 600,
    ...(onStderr === undefined ? {} : { onStderr }),
  });
  let out: string | undefined;
  if (r.code === 0) out = (JSON.parse(r.stdout) as { outputs: { out: string } }[])[0]?.outputs.out;
  return { ...r, out };
}

/** The derivations a build log says it built, by name. */
function built(log: string): string[] {
  return [...log.matchAll(/building '\/nix\/store\/[a-z0-9]{32}-(.+)\.drv'/g)].map((m) => m[1] as string).sort();
}

test(
  "checks.<system>.two-nodes builds with real nix: $out has a well-formed log.xml, junit.xml, report.html, the copied file",
  { timeout: 600_000 },
  async (t) => {
    const r = await build(`checks.${SYSTEM}.two-nodes`);
    assert.equal(r.code, 0, r.stderr.slice(-6000));
    const out = r.out as string;
    // The checked script is rebuilt only when its inputs changed (test.ts, the manifest, the runtime).
    if (built(r.stderr).includes("nixos-test-script-two-nodes")) assert.match(r.stderr, /nixos-test-ts: test\.ts: 0 errors, 0 warnings/);
    assert.match(r.stderr, /QEMU running/, "the VMs ran in the build");

    const xml = await readFile(join(out, "log.xml"), "utf8");
    assertWellFormed(xml);
    assert.match(xml, /the nodes reach each other on vlan 1/);
    const junit = await readFile(join(out, "junit.xml"), "utf8");
    assertWellFormed(junit);
    assert.match(junit, /<testcase[^>]*name="a file travels from the server into \$out"/);
    assert.match(await readFile(join(out, "report.html"), "utf8"), /<html/i);
    assert.equal((await readFile(join(out, "from-server", "greeting.txt"), "utf8")).trim(), "hello, nix", "from the npm package in nodeModules");
    assert.equal(
      (await readFile(join(out, "from-server", "from-nix.txt"), "utf8")).trim(),
      "hello from a Nix value on port 8000",
      "values: a store path read in the sandbox",
    );
    assert.deepEqual(buildUserLeftovers(), [], "no QEMU or vde_switch of the build survives it");
    t.diagnostic(
      `built ${sandbox.includes("true") ? "in nix's sandbox (host tools in extra-sandbox-paths)" : "without nix's sandbox"}, in ${r.seconds.toFixed(1)} s`,
    );
  },
);

test("the manifest: eval-time facts, plus the units of the system's unit directory (a build step)", { timeout: 120_000 }, async () => {
  const r = await build(`packages.${SYSTEM}.manifest`);
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  const manifest = JSON.parse(await readFile(r.out as string, "utf8"));
  assert.deepEqual(manifest.vlans, [1]);
  assert.deepEqual(manifest.nodes.server.addresses, { "1": "192.168.1.2" });
  assert.deepEqual(manifest.nodes.server.ports, { tcp: [8000], udp: [] });
  // web.service from systemd.units; the rest from <toplevel>/etc/systemd/system.
  assert.deepEqual(manifest.nodes.server.units, ["default.target", "getty@.service", "sshd.service", "web.service"]);
  assert.deepEqual(manifest.nodes.client.units, [], "the tiny guest has no systemd");
  assert.equal(manifest.globalTimeout, 300);
});

test("the driver: a wrapper with nixpkgs' --config JSON, pointing at the emitted script and the start scripts", { timeout: 120_000 }, async () => {
  const r = await build(`packages.${SYSTEM}.driver`);
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  const out = r.out as string;
  const config = JSON.parse(await readFile(join(out, "driver-configuration.json"), "utf8"));
  assert.deepEqual(Object.keys(config).sort(), ["containers", "enable_ssh_backdoor", "global_timeout", "test_script", "vlans", "vms"]);
  assert.deepEqual(config.vlans, [1]);
  assert.equal(config.global_timeout, 300);
  assert.match(config.test_script, /-nixos-test-script-two-nodes\/entry\.mjs$/);
  await access(config.test_script, constants.R_OK);
  for (const name of ["client", "server"]) {
    assert.equal(config.vms[name].name, name);
    assert.match(config.vms[name].start_script, new RegExp(`/bin/run-${name}-vm$`));
    await access(config.vms[name].start_script, constants.X_OK);
  }
  const wrapper = await readFile(join(out, "bin", "nixos-test-driver"), "utf8");
  assert.match(
    wrapper,
    new RegExp(
      `--config ${out}/driver-configuration\\.json '--log-level' 'info' '--test-name' 'two-nodes' '--manifest' '[^']+-two-nodes-manifest\\.json' "\\$@"`,
    ),
  );
  // The sources as checked, filtered to the script's modules.
  assert.deepEqual((await readdir(join(out, "script", "src"))).sort(), ["helpers.ts", "test.ts"]);
});

test("driverInteractive builds; its REPL starts with the test's symbols and .exit ends it", { timeout: 120_000 }, async () => {
  const r = await build(`checks.${SYSTEM}.two-nodes.driverInteractive`);
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  const state = await mkdtemp(join(tmpdir(), "ntt-nix-interactive-"));
  try {
    const run = await nix(join(r.out as string, "bin", "nixos-test-driver"), [], { input: ".exit\n", timeout: 60, cwd: state });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /nixos-test-ts interactive driver\. In scope: .*\bclient, server\b.*\bvlan1\b/);
    assert.match(run.stderr, /vlan1: vde_switch running/);
  } finally {
    await rm(state, { recursive: true, force: true });
  }
});

test("after an edit of test.ts, only the script and the driver are rebuilt, the bindings reused (figures)", { timeout: 120_000 }, async (t) => {
  // Warm: everything the driver needs is built (tests above), and evaluation is cached by nothing.
  const noop = await build(`packages.${SYSTEM}.driver`);
  assert.equal(noop.code, 0, noop.stderr.slice(-3000));
  assert.deepEqual(built(noop.stderr), []);

  await writeFile(scriptPath(), `${originalScript}\nlog("edited at ${Date.now()}");\n`);
  try {
    const r = await build(`packages.${SYSTEM}.driver`);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.deepEqual(built(r.stderr), ["nixos-test-driver-two-nodes", "nixos-test-script-two-nodes"]);
    const check = /process (\d+) ms/.exec(r.stderr)?.[1];
    t.diagnostic(
      `nix build of the driver after editing test.ts: ${r.seconds.toFixed(2)} s wall clock (evaluation + script + driver); ` +
        `nixos-test-ts check inside it: ${check} ms; nothing to do: ${noop.seconds.toFixed(2)} s`,
    );
    t.diagnostic(
      r.stderr
        .split("\n")
        .filter((l) => /timings:|  program/.test(l))
        .map((l) => l.replace(/^.*?> /, "").trim())
        .join(" "),
    );
    assert.ok(check !== undefined, "the check printed its timings");
    assert.match(r.stderr, /load ts-morph 0 ms/, "the bindings came from the generated derivation: the check did not load ts-morph");
  } finally {
    await writeFile(scriptPath(), originalScript);
  }
});

test("a type error in test.ts fails `nix build` of the check at the user's file:line, and no VM starts", { timeout: 120_000 }, async () => {
  const lines = originalScript.split("\n");
  const at = lines.findIndex((l) => l.startsWith("await startAll();"));
  lines.splice(at + 1, 0, `await server.succed("true");`);
  await writeFile(scriptPath(), lines.join("\n"));
  try {
    const r = await build(`checks.${SYSTEM}.two-nodes`);
    assert.notEqual(r.code, 0, "the build must fail");
    assert.match(r.stderr, new RegExp(`test\\.ts:${at + 2}:14 error TS2551 Property 'succed' does not exist`));
    assert.match(r.stderr, /nixos-test-ts: test\.ts: 1 error/);
    assert.doesNotMatch(r.stderr, /QEMU running|building '[^']*vm-test-run-two-nodes\.drv'/, "the test derivation never started");
  } finally {
    await writeFile(scriptPath(), originalScript);
  }
});

test("values: the manifest carries them, and a misspelt value name fails the check at its line", { timeout: 120_000 }, async () => {
  const m = await build(`packages.${SYSTEM}.manifest`);
  assert.equal(m.code, 0, m.stderr.slice(-3000));
  const values = JSON.parse(await readFile(m.out as string, "utf8")).values;
  assert.deepEqual(Object.keys(values).sort(), ["greetingFile", "serverAddress", "webPort"]);
  assert.match(values.greetingFile, /^\/nix\/store\/[a-z0-9]{32}-greeting-from-nix$/);

  const lines = originalScript.split("\n");
  const at = lines.findIndex((l) => l.includes("values.serverAddress"));
  lines[at] = (lines[at] as string).replace("values.serverAddress", "values.serverAdress");
  await writeFile(scriptPath(), lines.join("\n"));
  try {
    const r = await build(`packages.${SYSTEM}.script`);
    assert.notEqual(r.code, 0, "the build must fail");
    assert.match(
      r.stderr,
      new RegExp(`test\\.ts:${at + 1}:\\d+ error TS2551 Property 'serverAdress' does not exist on type 'Values'\\. Did you mean 'serverAddress'\\?`),
    );
  } finally {
    await writeFile(scriptPath(), originalScript);
  }
});

test("containers: a real build of the manifest (kind, units from its system), and the driver configuration's containers", { timeout: 120_000 }, async () => {
  const m = await build(`packages.${SYSTEM}.mixed-manifest`);
  assert.equal(m.code, 0, m.stderr.slice(-3000));
  const manifest = JSON.parse(await readFile(m.out as string, "utf8"));
  assert.deepEqual(Object.keys(manifest.nodes).sort(), ["client", "db"]);
  assert.equal(manifest.nodes.db.kind, "container");
  assert.deepEqual(manifest.nodes.db.units, ["multi-user.target", "postgresql.service"], "from the container's unit directory, at build time");
  assert.deepEqual(manifest.nodes.db.addresses, { "1": "192.168.1.2" });
  assert.deepEqual(manifest.vlans, [1]);

  const e = await nix("nix", ["eval", "--json", ...NIX_OPTIONS, ...overrides, `path:${dir}#mixedDriverConfiguration`], { cwd: dir, timeout: 120 });
  assert.equal(e.code, 0, e.stderr.slice(-3000));
  const config = JSON.parse(e.stdout);
  assert.deepEqual(Object.keys(config.vms), ["client"]);
  assert.deepEqual(config.containers.db.name, "db");
  assert.match(config.containers.db.start_script, /^\/nix\/store\/[a-z0-9]{32}-db-nspawn\/bin\/run-db-nspawn$/);
  assert.deepEqual(config.vlans, [1]);
});

test("a test build interrupted while its VMs run leaves no QEMU or vde_switch behind", { timeout: 120_000 }, async () => {
  // A new salt: a new test derivation, so that it really runs.
  const host = JSON.parse(await readFile(join(dir, "host.json"), "utf8"));
  await writeFile(join(dir, "host.json"), JSON.stringify({ ...host, salt: `${host.salt}-interrupted` }));
  let interrupted: Promise<void> | undefined;
  const r = await build(`checks.${SYSTEM}.two-nodes`, [], (stderr, interrupt) => {
    if (interrupted === undefined && /QEMU running[\s\S]*QEMU running/.test(stderr)) interrupted = interrupt();
  });
  await interrupted;
  assert.ok(interrupted !== undefined, `the VMs never started:\n${r.stderr.slice(-3000)}`);
  assert.notEqual(r.code, 0);
  assert.deepEqual(buildUserLeftovers(), []);
});

test("no nix process of these tests is left", async () => {
  await stopAll();
  assert.deepEqual(buildUserLeftovers(), []);
});
