# nixpkgs' runTest / runNixOSTest with a TypeScript test script: nixpkgs'
# own test modules (nixos/lib/testing), without its testScript.nix, plus
# ./nixos-test-ts.nix. Needs real nixpkgs: not evaluated by this
# repository's tests.
#
#   t = import ./run-test.nix { inherit lib; nixpkgs = <nixpkgs source>; };
#   t.runNixOSTest pkgs ./test.nix      # as pkgs.testers.runNixOSTest ./test.nix
#   t.runTest { hostPkgs = pkgs; imports = [ ./test.nix ]; }   # as lib.nixos.runTest
{
  lib,
  nixpkgs,
}:
let
  testing = import "${toString nixpkgs}/nixos/lib/testing/default.nix" { inherit lib; };

  # nixpkgs' testScript.nix declares `testScript` as Python text; ours takes a .ts file.
  isTestScriptModule = m: baseNameOf (toString m) == "testScript.nix";
  nixpkgsModules = builtins.filter (m: !isTestScriptModule m) testing.testModules;
  testModules =
    assert lib.assertMsg (builtins.length nixpkgsModules == builtins.length testing.testModules - 1)
      "nixos-test-ts: nixos/lib/testing/default.nix of this nixpkgs has no testScript.nix among its testModules; nix/modules/run-test.nix needs updating";
    nixpkgsModules ++ [ ./nixos-test-ts.nix ];

  evalTest =
    module:
    lib.evalModules {
      modules = testModules ++ [ module ];
      class = "nixosTest";
    };

  runTest =
    module:
    (evalTest (
      { config, ... }:
      {
        imports = [ module ];
        result = config.test;
      }
    )).config.result;

  # As pkgs.testers.runNixOSTest (pkgs/build-support/testers/default.nix).
  runNixOSTest =
    pkgs: testModule:
    runTest {
      _file = "nixos-test-ts runNixOSTest implementation";
      imports = [ (lib.setDefaultModuleLocation "the argument that was passed to runNixOSTest" testModule) ];
      hostPkgs = pkgs;
      node.pkgs = pkgs;
    };
in
{
  inherit
    evalTest
    runTest
    runNixOSTest
    testModules
    ;
}
