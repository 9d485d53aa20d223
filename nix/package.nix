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
  importNpmLock,
  makeWrapper,
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

  # `npm run build` is `tsc -p tsconfig.json`; test/ and bench/ are not in src.

  postInstall = ''
    # vde_switch for the vlans; QEMU comes from each VM's start script.
    wrapProgram $out/bin/nixos-test-driver --prefix PATH : ${lib.makeBinPath [ vde2 ]}
  '';

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "nixos-test-driver";
    platforms = lib.platforms.linux;
  };
}
