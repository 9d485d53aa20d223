# A stand-in for the nixpkgs flake input (test/nix/outputs.test.ts): what
# flake.nix and nix/ take from nixpkgs — lib (./lib.nix), legacyPackages
# (./pkgs.nix: host-tool derivations, stubs for the rest) and
# nixos/lib/testing (a small test framework with nixpkgs' option names) —
# so that every output of flake.nix evaluates to its derivation path here,
# where nixpkgs cannot be fetched. Stub packages are never built.
let
  lib = import ./lib.nix;
in
{
  outPath = ./.;
  inherit lib;
  legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
    system:
    import ./pkgs.nix {
      inherit system lib;
      path = ./.;
    }
  );
}
