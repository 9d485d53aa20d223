// nix/lib/driver.nix evaluated (not built) through the host-tools shim:
// nixpkgs' driver configuration, the emitted entry's name, what goes into
// the script's sources, and the errors for scripts it cannot take.
import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { NIX_LIB, REPO, SHIM, evalError, evalJson, nixString, removeTempDirs, requireNix, tempDir } from "./helpers.js";

// Evaluation only: the runtime package is never built, so its inputs may be anything.
const ntt = `(import ${NIX_LIB}/driver.nix { pkgs = import ${SHIM} { system = builtins.currentSystem; dist = "/nonexistent/dist"; nodeModules = "/nonexistent/node_modules"; }; })`;
const fakeVm = `(builtins.derivation { name = "vm"; system = builtins.currentSystem; builder = "/bin/sh"; })`;
const nodes = `{ server.config = { system.name = "server"; system.build.vm = ${fakeVm}; virtualisation.vlans = [ 1 2 ]; }; client.config = { system.build.vm = ${fakeVm}; }; }`;
const fixtureScript = join(REPO, "test", "nix", "fixture", "two-nodes", "test.ts");

before(() => requireNix());
after(() => removeTempDirs());

test("driverConfiguration is nixpkgs' JSON: vms from system.build.vm, vlans, timeout, the emitted script", async () => {
  const c = (await evalJson(`(${ntt} { name = "t"; nodes = ${nodes}; testScript = ${fixtureScript}; globalTimeout = 77; }).driverConfiguration`)) as {
    vms: Record<string, { name: string; start_script: string }>;
    vlans: number[];
    global_timeout: number;
    enable_ssh_backdoor: boolean;
    containers: object;
    test_script: string;
  };
  assert.deepEqual(Object.keys(c.vms), ["client", "server"]);
  assert.match(c.vms.server?.start_script ?? "", /^\/nix\/store\/[a-z0-9]{32}-vm\/bin\/run-server-vm$/);
  assert.match(c.vms.client?.start_script ?? "", /\/bin\/run-client-vm$/, "system.name defaults to the node's name");
  assert.deepEqual(c.vlans, [1, 2]);
  assert.equal(c.global_timeout, 77);
  assert.equal(c.enable_ssh_backdoor, false);
  assert.deepEqual(c.containers, {});
  assert.match(c.test_script, /-nixos-test-script-t\/entry\.mjs$/);
});

test("containers: run-<name>-nspawn from system.build.nspawn in driverConfiguration.containers, vlans shared with the nodes", async () => {
  const nspawn = (n: string): string =>
    `(builtins.derivation { name = "nspawn-${n}"; system = builtins.currentSystem; builder = "/bin/sh"; } // { meta.mainProgram = "run-${n}-nspawn"; })`;
  const c = (await evalJson(`(${ntt} {
    name = "t"; nodes = ${nodes}; testScript = ${fixtureScript};
    containers = { db.config = { system.build.nspawn = ${nspawn("db")}; virtualisation.vlans = [ 2 3 ]; }; cache.system.build.nspawn = ${nspawn("cache")}; };
  }).driverConfiguration`)) as { vms: object; containers: Record<string, { name: string; start_script: string }>; vlans: number[] };
  assert.deepEqual(Object.keys(c.vms), ["client", "server"]);
  assert.deepEqual(Object.keys(c.containers), ["cache", "db"]);
  assert.equal(c.containers.db?.name, "db");
  assert.match(c.containers.db?.start_script ?? "", /^\/nix\/store\/[a-z0-9]{32}-nspawn-db\/bin\/run-db-nspawn$/);
  assert.match(c.containers.cache?.start_script ?? "", /-nspawn-cache\/bin\/run-cache-nspawn$/);
  assert.deepEqual(c.vlans, [1, 2, 3], "the nodes' vlans and the containers' together");
  const overridden = (await evalJson(
    `(${ntt} { name = "t"; nodes = ${nodes}; testScript = ${fixtureScript}; containers.db.system.build.nspawn = ${nspawn("db")}; containerStartScripts.db = "/elsewhere/run-db-nspawn"; }).driverConfiguration.containers`,
  )) as Record<string, { start_script: string }>;
  assert.equal(overridden.db?.start_script, "/elsewhere/run-db-nspawn");
});

test("startScripts replaces the nodes' VMs; a path is copied into the store", async () => {
  const dir = await tempDir("ntt-nix-start-");
  await writeFile(join(dir, "run-server-vm"), "#!/bin/sh\n", { mode: 0o755 });
  const c = (await evalJson(
    `(${ntt} { name = "t"; nodes = ${nodes}; testScript = ${fixtureScript}; startScripts = { server = ${join(dir, "run-server-vm")}; client = "/somewhere/run-client-vm"; }; }).driverConfiguration.vms`,
  )) as Record<string, { start_script: string }>;
  assert.match(c.server?.start_script ?? "", /^\/nix\/store\/[a-z0-9]{32}-run-server-vm$/);
  assert.equal(c.client?.start_script, "/somewhere/run-client-vm");
});

test("the script's sources: its directory's .ts/.js/.json files, not Nix files, node_modules, results or editor bindings", async () => {
  const dir = await tempDir("ntt-nix-src-");
  for (const f of [
    "test.ts",
    "helper.ts",
    "data.json",
    "plain.mjs",
    "test.nix",
    "flake.nix",
    "flake.lock",
    "test.generated.ts",
    "nixos-test-ts.env.d.ts",
    "tsconfig.json",
    "notes.md",
  ]) {
    await writeFile(join(dir, f), "");
  }
  await mkdir(join(dir, "lib"));
  await writeFile(join(dir, "lib", "mod.ts"), "");
  await mkdir(join(dir, "node_modules", "x"), { recursive: true });
  await writeFile(join(dir, "node_modules", "x", "index.js"), "");
  await symlink("/nix/store", join(dir, "result"));
  const listing = await evalJson(
    `let src = (${ntt} { name = "t"; nodes = ${nodes}; testScript = ${join(dir, "test.ts")}; }).src; in { top = builtins.attrNames (builtins.readDir src); lib = builtins.attrNames (builtins.readDir (src + "/lib")); }`,
  );
  assert.deepEqual(listing, { top: ["data.json", "helper.ts", "lib", "plain.mjs", "test.ts"], lib: ["mod.ts"] });
});

test("the emitted entry: test.ts -> test.js, test.mts -> test.mjs, looked for under each directory it may be emitted from", async () => {
  const dir = await tempDir("ntt-nix-mts-");
  await mkdir(join(dir, "tests"));
  await writeFile(join(dir, "tests", "test.mts"), "");
  const loop = (build: string) => /for candidate in (.*); do/.exec(build)?.[1];
  const plain = (await evalJson(`(${ntt} { name = "t"; nodes = ${nodes}; testScript = ${fixtureScript}; }).script.buildCommand`)) as string;
  assert.equal(loop(plain), "'test.js'");
  const mts = (await evalJson(`(${ntt} { name = "t"; nodes = ${nodes}; testScript = ${join(dir, "tests", "test.mts")}; }).script.buildCommand`)) as string;
  assert.equal(loop(mts), "'test.mjs'");
  // In a subdirectory of testScriptSrc, tsc emits it there only when the script imports from above it.
  const sub = (await evalJson(
    `(${ntt} { name = "t"; nodes = ${nodes}; testScriptSrc = ${dir}; testScript = ${join(dir, "tests", "test.mts")}; }).script.buildCommand`,
  )) as string;
  assert.equal(loop(sub), "'tests/test.mjs' 'test.mjs'");
  assert.match(sub, /ln -s "test-script\/\$entry" "\$out\/entry\.mjs"/);
});

test("scripts it cannot take are evaluation errors that say what to do", async () => {
  const dir = await tempDir("ntt-nix-bad-");
  await writeFile(join(dir, "test.js"), "");
  await mkdir(join(dir, "other"));
  assert.match(
    await evalError(`(${ntt} { name = "t"; nodes = ${nodes}; testScript = ${join(dir, "test.js")}; }).driverConfiguration.test_script`),
    /test t: the test script must be a \.ts or \.mts file, not test\.js/,
  );
  assert.match(
    await evalError(`(${ntt} { name = "t"; nodes = ${nodes}; testScript = ${nixString(join(dir, "test.ts"))}; }).driverConfiguration.test_script`),
    /testScript is a string .*; pass a path \(testScript = \.\/test\.ts\), or testScriptSrc/,
  );
  assert.match(
    await evalError(
      `(${ntt} { name = "t"; nodes = ${nodes}; testScriptSrc = ${join(dir, "other")}; testScript = ${join(dir, "test.js")}; }).driverConfiguration.test_script`,
    ),
    /testScript .*test\.js is not inside testScriptSrc/,
  );
  assert.match(await evalError(`(${ntt} { name = "t"; nodes = ${nodes}; testScript = ${fixtureScript}; logLevel = "loud"; }).driver.drvPath`), /assert/);
});

test("the wrapper's arguments: log level, test name, extraDriverArgs; --interactive only in driverInteractive", async () => {
  const r =
    (await evalJson(`let t = ${ntt} { name = "t"; nodes = ${nodes}; testScript = ${fixtureScript}; logLevel = "debug"; extraDriverArgs = [ "--keep-vm-state" ]; extraPath = [ "/opt/ocr" ]; };
    in { d = t.driver.buildCommand; i = t.driverInteractive.buildCommand; features = t.test.requiredSystemFeatures; test = t.test.buildCommand; }`)) as Record<
      string,
      string | string[]
    >;
  assert.match(r.d as string, /'--log-level' 'debug' '--test-name' 't' '--manifest' '\/nix\/store\/[a-z0-9]{32}-t-manifest\.json' '--keep-vm-state' "\\\$@"/);
  assert.doesNotMatch(r.d as string, /--interactive/);
  assert.match(r.i as string, /'--keep-vm-state' '--interactive' "\\\$@"/);
  assert.match(r.d as string, /PATH=\/opt\/ocr\/bin\\\$\{PATH:\+:\\\$PATH\}\nexport PATH\n/);
  assert.deepEqual(r.features, ["nixos-test", "kvm"]);
  assert.match(r.test as string, /export LOGFILE="\$out\/log\.xml"\n.*\/bin\/nixos-test-driver -o "\$out" --junit-xml junit\.xml/);
});

test("skipTypeCheck, skipLint and strictPorts reach the check; the check prints its timings", async () => {
  const r = (await evalJson(`let t = args: (${ntt} ({ name = "t"; nodes = ${nodes}; testScript = ${fixtureScript}; } // args)); in {
    plain = (t { }).script.buildCommand;
    skipped = (t { skipTypeCheck = true; skipLint = true; }).script.buildCommand;
    strict = (t { strictPorts = true; }).manifest.drvAttrs.text or "";
  }`)) as Record<string, string>;
  assert.match(r.plain ?? "", /nixos-test-ts check --manifest \S+ --out "\$out\/test-script" '--timings' 'test\.ts'/);
  assert.match(r.skipped ?? "", /'--timings' '--skip-type-check' '--skip-lint' 'test\.ts'/);
  assert.equal(JSON.parse(r.strict ?? "{}").strictPorts, true);
});
