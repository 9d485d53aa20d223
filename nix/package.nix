# The runtime and the generator as a nixpkgs package: bin/nixos-test-driver,
# bin/nixos-test-ts, lib/node_modules/nixos-test-ts (dist/ + production
# node_modules). Dependencies come from package-lock.json through
# importNpmLock (no npmDepsHash to update): every entry needs its "resolved"
# URL and "integrity" (test/nix/outputs.test.ts checks that).
#
#   pkgs.callPackage ./nix/package.nix { }
{
  lib,
  buildNpmPackage,
  coreutils,
  importNpmLock,
  makeWrapper,
  nodejs,
  python3,
  vde2,
}:
let
  packageJson = lib.importJSON ../package.json;
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../bin
      ../lib
      ../runtime
      ../generator
    ];
  };
in
buildNpmPackage {
  pname = packageJson.name;
  inherit (packageJson) version;
  inherit src;

  npmDeps = importNpmLock { npmRoot = src; };
  npmConfigHook = importNpmLock.npmConfigHook;

  # node-pty (the runtime drives vde_switch through a pseudo-terminal) is a
  # native addon: `npm rebuild` compiles it with node-gyp.
  nativeBuildInputs = [
    makeWrapper
    python3
  ];

  # `npm run build` is `tsc -p tsconfig.json` and the check's startup snapshot; test/ and bench/ are not in src.

  postInstall = ''
    # The check's startup snapshot is keyed by where the package is (its compiler options name the
    # runtime's declarations by path): build it again where it now lies; the one from the build dir
    # goes. Without it `nixos-test-ts check` is only slower, so a failure here does not fail the build.
    node $out/lib/node_modules/nixos-test-ts/dist/generator/snapshot.js \
      || echo "warning: nixos-test-ts: no startup snapshot for the check (it will load TypeScript each time)" >&2
    # vde_switch for the vlans; QEMU comes from each VM's start script.
    wrapProgram $out/bin/nixos-test-driver --prefix PATH : ${lib.makeBinPath [ vde2 ]}
    # bin/nixos-test-ts is a shell script (it starts Node from the snapshot itself): it finds Node, readlink
    # and stat on PATH. The snapshot's launch file names this same Node, so the check starts from it.
    wrapProgram $out/bin/nixos-test-ts --prefix PATH : ${lib.makeBinPath [ nodejs coreutils ]}
  '';

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "nixos-test-driver";
    platforms = lib.platforms.linux;
  };
}
