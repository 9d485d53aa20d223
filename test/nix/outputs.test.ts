// What flake.nix offers, as far as it can be checked without nixpkgs: its
// outputs' structure and every derivation they name (instantiated against a stub for the nixpkgs input), the
// example scripts type-checked against manifests of stand-in nodes, and the
// lockfile importNpmLock reads.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { NIX_LIB, REPO, evalJson, removeTempDirs, requireNix, tempDir } from "./helpers.js";

before(() => requireNix());
after(() => removeTempDirs());

// The nixpkgs input, stubbed (test/nix/stub-nixpkgs: its lib with a small
// module system, host-tool packages, a test framework with nixpkgs' option
// names), so that every output evaluates down to its derivation here.
const STUB_NIXPKGS = join(REPO, "test", "nix", "stub-nixpkgs");
const flakeWithStub = `let
    flake = import ${REPO}/flake.nix;
    nixpkgs = import ${STUB_NIXPKGS};
    self = flake.outputs { inherit self nixpkgs; };
  in`;

test("flake.nix: lib, overlays, packages, templates and checks are there (nixpkgs stubbed)", async () => {
  const shape = (await evalJson(`${flakeWithStub} {
    outputs = builtins.attrNames self;
    lib = builtins.attrNames self.lib;
    overlay = builtins.isFunction self.overlays.default;
    systems = builtins.attrNames self.packages;
    packages = builtins.attrNames self.packages.x86_64-linux;
    checks = builtins.attrNames self.checks.x86_64-linux;
    template = builtins.attrNames (builtins.readDir self.templates.default.path);
    description = self.templates.default.description;
    manifest = (self.lib.manifest { name = "m"; nodes.a.config = { }; }).vlans;
  }`)) as Record<string, unknown>;
  assert.deepEqual(shape.outputs, ["checks", "lib", "overlays", "packages", "templates"]);
  assert.deepEqual(shape.lib, ["evalTest", "manifest", "mkTest", "runNixOSTest", "runTest"]);
  assert.equal(shape.overlay, true);
  assert.deepEqual(shape.systems, ["aarch64-linux", "x86_64-linux"]);
  assert.deepEqual(shape.packages, ["default", "nixos-test-ts"]);
  assert.deepEqual(shape.checks, ["package", "template", "vlans"]);
  assert.deepEqual(shape.template, ["flake.nix", "test.nix", "test.ts"]);
  assert.match(shape.description as string, /two-node/);
  assert.deepEqual(shape.manifest, [1]);
});

test("every derivation flake.nix outputs instantiates: packages, checks (test, driver, driverInteractive, manifest, script), overlay, lib", async () => {
  // A path that does not exist, an attribute a file lacks, a wrong argument:
  // each fails here, on every system, as it would in `nix flake check`.
  const drvs = (await evalJson(`${flakeWithStub} let
    inherit (builtins) attrNames concatMap listToAttrs mapAttrs;
    parts = [ "driver" "driverInteractive" "manifest" "script" ];
    perSystem = system: let
      pkgs = nixpkgs.legacyPackages.\${system};
      overlaid = self.overlays.default (pkgs // overlaid) pkgs;
      checks = self.checks.\${system};
    in
      mapAttrs (_: p: p.drvPath) self.packages.\${system}
      // listToAttrs (concatMap (c: [ { name = "checks.\${c}"; value = checks.\${c}.drvPath; } ]
           ++ (if checks.\${c} ? driver then map (part: { name = "checks.\${c}.\${part}"; value = checks.\${c}.\${part}.drvPath; }) parts else [ ])) (attrNames checks))
      // {
        "overlay.nixos-test-ts" = overlaid.nixos-test-ts.drvPath;
        "overlay.testers.runNixOSTestTs" = (overlaid.testers.runNixOSTestTs ${REPO}/nix/template/test.nix).drvPath;
        "lib.runTest" = (self.lib.runTest { hostPkgs = pkgs; imports = [ ${REPO}/nix/examples/vlans/test.nix ]; }).drvPath;
        "lib.mkTest" = (self.lib.mkTest pkgs { name = "m"; nodes.a.config.system.build.vm = pkgs.hello; testScript = ${REPO}/nix/template/test.ts; }).test.drvPath;
      };
  in mapAttrs (system: _: perSystem system) self.packages`)) as Record<string, Record<string, string>>;
  assert.deepEqual(Object.keys(drvs).sort(), ["aarch64-linux", "x86_64-linux"]);
  for (const [system, paths] of Object.entries(drvs)) {
    assert.deepEqual(
      Object.keys(paths).sort(),
      [
        "checks.package",
        "checks.template",
        ...[".driver", ".driverInteractive", ".manifest", ".script"].map((p) => `checks.template${p}`),
        "checks.vlans",
        ...[".driver", ".driverInteractive", ".manifest", ".script"].map((p) => `checks.vlans${p}`),
        "default",
        "lib.mkTest",
        "lib.runTest",
        "nixos-test-ts",
        "overlay.nixos-test-ts",
        "overlay.testers.runNixOSTestTs",
      ].sort(),
      system,
    );
    for (const [output, drv] of Object.entries(paths)) assert.match(drv, /^\/nix\/store\/[a-z0-9]{32}-.+\.drv$/, `${system} ${output}`);
    assert.match(paths["checks.vlans"] as string, /-vm-test-run-vlans\.drv$/);
    assert.match(paths["checks.template.script"] as string, /-nixos-test-script-two-nodes\.drv$/);
    assert.notEqual(paths["checks.template.driver"], paths["checks.template.driverInteractive"], "driverInteractive is the test evaluated with --interactive");
  }
});

test("every .nix file of the Nix layer parses", () => {
  const files = [
    "flake.nix",
    ...["lib/manifest.nix", "lib/driver.nix", "lib/config-of.nix", "package.nix", "modules/nixos-test-ts.nix", "modules/run-test.nix"].map((f) => `nix/${f}`),
    "nix/template/flake.nix",
    "nix/template/test.nix",
    "nix/examples/vlans/test.nix",
  ];
  for (const f of files) {
    const r = spawnSync("nix-instantiate", ["--parse", join(REPO, f)], { encoding: "utf8" });
    assert.equal(r.status, 0, `${f}: ${r.stderr}`);
  }
});

/** Type-checks an example script against the manifest manifest.nix makes of stand-in nodes. */
async function checkExample(script: string, nodes: string): Promise<void> {
  const dir = await tempDir("ntt-nix-example-");
  const manifest = await evalJson(`import ${NIX_LIB}/manifest.nix { name = "example"; nodes = ${nodes}; }`);
  await writeFile(join(dir, "manifest.json"), JSON.stringify(manifest));
  const r = spawnSync(
    process.execPath,
    [join(REPO, "dist", "generator", "cli.js"), "check", "--manifest", join(dir, "manifest.json"), "--out", join(dir, "out"), script],
    {
      encoding: "utf8",
    },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /0 errors, 0 warnings/);
}

// What a NixOS evaluation would list (systemd.units plus the system's unit directory), in part.
const baseUnits = `{ "multi-user.target" = { }; "network-online.target" = { }; "getty@.service" = { }; }`;

test("the template's test.ts type-checks against its two nodes (nginx on 80, a client)", async () => {
  await checkExample(
    join(REPO, "nix", "template", "test.ts"),
    `{ server.config = { systemd.units = ${baseUnits} // { "nginx.service" = { }; }; networking.firewall.allowedTCPPorts = [ 80 ]; };
       client.config.systemd.units = ${baseUnits}; }`,
  );
});

test("the vlans example's test.ts type-checks against its three nodes on two vlans", async () => {
  await checkExample(
    join(REPO, "nix", "examples", "vlans", "test.ts"),
    `{ a.config = { virtualisation.vlans = [ 1 ]; systemd.units = ${baseUnits}; };
       b.config = { virtualisation.vlans = [ 2 ]; systemd.units = ${baseUnits}; };
       router.config = { virtualisation.vlans = [ 1 2 ]; systemd.units = ${baseUnits}; }; }`,
  );
});

test("package-lock.json: every package has the resolved URL and integrity importNpmLock fetches it by", async () => {
  const lock = JSON.parse(await readFile(join(REPO, "package-lock.json"), "utf8")) as {
    packages: Record<string, { resolved?: string; integrity?: string; link?: boolean }>;
  };
  const incomplete = Object.entries(lock.packages)
    .filter(([path, p]) => path !== "" && !p.link && !(p.resolved?.startsWith("https://") && p.integrity?.startsWith("sha512-")))
    .map(([path]) => path);
  assert.deepEqual(incomplete, [], "regenerate with: npm install --package-lock-only (the project's .npmrc keeps the resolved URLs)");
  // A user-level omit-lockfile-registry-resolved=true would drop them again on the next npm install.
  assert.match(await readFile(join(REPO, ".npmrc"), "utf8"), /^omit-lockfile-registry-resolved=false$/m);
  assert.ok((await readdir(REPO)).includes("package-lock.json"));
});
