// What flake.nix offers, as far as it can be checked without nixpkgs: its
// outputs' structure (evaluated with a stub for the nixpkgs input), the
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

// Only what flake.nix touches outside the attributes that need real nixpkgs.
const stubNixpkgs = `{
  outPath = "/nonexistent/nixpkgs";
  lib.genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
  legacyPackages = throw "the stub nixpkgs has no packages";
}`;

test("flake.nix: lib, overlays, packages, templates and checks are there (nixpkgs stubbed)", async () => {
  const shape = (await evalJson(`let
    flake = import ${REPO}/flake.nix;
    self = flake.outputs { inherit self; nixpkgs = ${stubNixpkgs}; };
  in {
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
  const r = spawnSync(process.execPath, [join(REPO, "dist", "generator", "cli.js"), "check", "--manifest", join(dir, "manifest.json"), "--out", join(dir, "out"), script], {
    encoding: "utf8",
  });
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
  const lock = JSON.parse(await readFile(join(REPO, "package-lock.json"), "utf8")) as { packages: Record<string, { resolved?: string; integrity?: string; link?: boolean }> };
  const incomplete = Object.entries(lock.packages)
    .filter(([path, p]) => path !== "" && !p.link && !(p.resolved?.startsWith("https://") && p.integrity?.startsWith("sha512-")))
    .map(([path]) => path);
  assert.deepEqual(incomplete, [], "regenerate with: npm install --package-lock-only (the project's .npmrc keeps the resolved URLs)");
  // A user-level omit-lockfile-registry-resolved=true would drop them again on the next npm install.
  assert.match(await readFile(join(REPO, ".npmrc"), "utf8"), /^omit-lockfile-registry-resolved=false$/m);
  assert.ok((await readdir(REPO)).includes("package-lock.json"));
});
