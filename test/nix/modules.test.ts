// nix/modules (the glue into nixpkgs' test framework) evaluated against the
// stub nixpkgs (test/nix/stub-nixpkgs): testScript's forms and values, and
// nixpkgs' options that the TypeScript driver honours or refuses. What the
// real nixpkgs module system would merge differently is not proved here; the
// values' path through the build is (test/nix/flake.test.ts, real nix build).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { REPO, evalError, evalJson, nix, removeTempDirs, requireNix } from "./helpers.js";

before(() => requireNix());
after(() => removeTempDirs());

/** `runNixOSTest pkgs <module>` with the stub nixpkgs, bound to `test`, then `body`. */
const withTest = (module: string, body: string): string => `let
    nixpkgs = import ${REPO}/test/nix/stub-nixpkgs;
    pkgs = nixpkgs.legacyPackages.x86_64-linux;
    testing = import ${REPO}/nix/modules/run-test.nix { inherit (nixpkgs) lib; nixpkgs = nixpkgs.outPath; };
    test = testing.runNixOSTest pkgs (${module});
  in ${body}`;

const TEMPLATE_TS = `${REPO}/nix/template/test.ts`;

test("testScript = { nodes, pkgs, ... }: { file; values; }: the values go into the manifest, their store paths with them", async () => {
  const module = `{
    name = "values";
    nodes.server.networking.firewall.allowedTCPPorts = [ 80 ];
    testScript = { nodes, pkgs, ... }: {
      file = ${TEMPLATE_TS};
      values = { serverName = nodes.server.networking.hostName; hello = "\${pkgs.hello}/bin/hello"; port = 80; };
    };
  }`;
  const r = (await evalJson(
    withTest(
      module,
      `{
    manifest = builtins.fromJSON (builtins.unsafeDiscardStringContext test.manifest.text);
    context = builtins.attrNames (builtins.getContext test.manifest.text);
    hello = pkgs.hello.drvPath;
    test = test.drvPath;
  }`,
    ),
  )) as { manifest: { values: Record<string, unknown> }; context: string[]; hello: string; test: string };
  assert.deepEqual(Object.keys(r.manifest.values).sort(), ["hello", "port", "serverName"]);
  assert.equal(r.manifest.values.serverName, "server");
  assert.equal(r.manifest.values.port, 80);
  assert.match(r.manifest.values.hello as string, /^\/nix\/store\/[a-z0-9]{32}-stub-hello\/bin\/hello$/);
  assert.deepEqual(r.context, [r.hello], "the manifest derivation depends on hello");
  // ... and so the test derivation does, through the manifest, the script and the driver.
  const closure = await nix("nix-store", ["--query", "--requisites", r.test]);
  assert.equal(closure.code, 0, closure.stderr);
  assert.ok(closure.stdout.split("\n").includes(r.hello), "hello's derivation is in the test derivation's closure");
});

test("testScript: a plain path, a function returning one, and inline text keep working, without values", async () => {
  const forms = {
    path: TEMPLATE_TS,
    fn: `{ nodes, ... }: ${TEMPLATE_TS}`,
    inline: `"await startAll();\\n"`,
  };
  for (const [form, script] of Object.entries(forms)) {
    const r = (await evalJson(
      withTest(
        `{ name = "forms"; nodes.server = { }; testScript = ${script}; }`,
        `{
      values = (builtins.fromJSON test.manifest.text) ? values;
      script = test.driver.script.drvPath;
    }`,
      ),
    )) as { values: boolean; script: string };
    assert.equal(r.values, false, form);
    assert.match(r.script, /-nixos-test-script-forms\.drv$/, form);
  }
});

test("testScript = { … } with a key other than file and values fails evaluation, naming the shape", async () => {
  const err = await evalError(withTest(`{ name = "bad"; nodes.a = { }; testScript = { file = ${TEMPLATE_TS}; value = { x = 1; }; }; }`, "test.drvPath"));
  assert.match(err, /nixos-test-ts: test bad: testScript has value; it takes \{ file = \.\/test\.ts; values = \{ … \}; \}/);
});

const base = `name = "opts"; nodes.server = { }; testScript = ${TEMPLATE_TS};`;

test("sshBackdoor.enable fails evaluation naming `.shell` in driverInteractive; interactive.sshBackdoor.enable fails driverInteractive only", async () => {
  const err = await evalError(withTest(`{ ${base} sshBackdoor.enable = true; }`, "test.drvPath"));
  assert.match(err, /nixos-test-ts: test opts: sshBackdoor\.enable .* is not supported.*run driverInteractive and type `\.shell <machine>`/);
  const interactive = `{ ${base} interactive.sshBackdoor.enable = true; }`;
  assert.match((await evalJson(withTest(interactive, "test.driver.drvPath"))) as string, /-nixos-test-driver-opts\.drv$/);
  assert.match(await evalError(withTest(interactive, "test.driverInteractive.drvPath")), /sshBackdoor\.enable .*`\.shell <machine>`/);
});

test("enableDebugHook fails evaluation naming --pause-on-failure; extraPythonPackages naming nodeModules", async () => {
  assert.match(await evalError(withTest(`{ ${base} enableDebugHook = true; }`, "test.drvPath")), /enableDebugHook is not supported.*"--pause-on-failure"/);
  const python = await evalError(withTest(`{ ${base} extraPythonPackages = ps: [ ps.requests ]; }`, "test.drvPath"));
  assert.match(python, /extraPythonPackages is for nixpkgs' Python driver; .* with nodeModules/);
  assert.match((await evalJson(withTest(`{ ${base} extraPythonPackages = ps: [ ]; }`, "test.drvPath"))) as string, /-vm-test-run-opts\.drv$/);
});

test("includeTestScriptReferences: the values' store paths go into additionalPaths of nodes with a store image, as nixpkgs does", async () => {
  const module = (include: boolean): string => `{
    name = "refs";
    nodes.image.virtualisation.useNixStoreImage = true;
    nodes.plain = { };
    includeTestScriptReferences = ${include};
    testScript = { pkgs, ... }: { file = ${TEMPLATE_TS}; values.hello = "\${pkgs.hello}"; };
  }`;
  const paths = (include: boolean): Promise<unknown> =>
    evalJson(
      withTest(
        module(include),
        `{ image = map (p: p.name) test.nodes.image.virtualisation.additionalPaths; plain = test.nodes.plain.virtualisation.additionalPaths or [ ]; }`,
      ),
    );
  assert.deepEqual(await paths(true), { image: ["string-references"], plain: [] });
  assert.deepEqual(await paths(false), { image: [], plain: [] });
});

test("containers and containerDefaults: container machines in the manifest and in the driver configuration, vlans shared with nodes", async () => {
  const module = `{
    name = "mixed";
    nodes.web.virtualisation.vlans = [ 1 ];
    containers.db.networking.firewall.allowedTCPPorts = [ 5432 ];
    containerDefaults.virtualisation.vlans = [ 1 2 ];
    testScript = ${TEMPLATE_TS};
  }`;
  const r = (await evalJson(
    withTest(
      module,
      `{
    manifest = builtins.fromJSON (builtins.unsafeDiscardStringContext test.manifest.text);
    config = test.driver.driverConfiguration;
  }`,
    ),
  )) as {
    manifest: { vlans: number[]; nodes: Record<string, { kind?: string; vlans: number[]; ports: { tcp: number[] } }> };
    config: { vms: Record<string, { start_script: string }>; containers: Record<string, { name: string; start_script: string }>; vlans: number[] };
  };
  assert.equal(r.manifest.nodes.db?.kind, "container");
  assert.deepEqual(r.manifest.nodes.db?.vlans, [1, 2], "containerDefaults applied to the container");
  assert.deepEqual(r.manifest.nodes.web?.vlans, [1], "and not to the node");
  assert.deepEqual(r.manifest.nodes.db?.ports.tcp, [5432]);
  assert.deepEqual(Object.keys(r.config.vms), ["web"]);
  assert.deepEqual(Object.keys(r.config.containers), ["db"]);
  assert.match(r.config.containers.db?.start_script ?? "", /-nspawn-db\/bin\/run-db-nspawn$/);
  assert.deepEqual(r.config.vlans, [1, 2]);
});
