# nixpkgs' testScript.nix declares the script as Python text; nix/modules/run-test.nix
# must leave this file out (it declares the same options as nix/modules/nixos-test-ts.nix).
{ lib, ... }:
{
  options.testScript = lib.mkOption { type = lib.types.str; };
  options.testScriptString = lib.mkOption { type = lib.types.str; };
}
