# nixos/lib/testing/default.nix of the stub nixpkgs: testModules as nixpkgs
# lists them, reduced to one module with nixpkgs' option names
# (./framework.nix) and testScript.nix, which nix/modules/run-test.nix
# leaves out.
{ lib }:
{
  testModules = [
    ./framework.nix
    ./testScript.nix
  ];
}
