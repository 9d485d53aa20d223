{
  description = "nixos-test-ts: NixOS VM tests with TypeScript test scripts, type-checked against the test's nodes at build time";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      # The runtime drives QEMU and vde_switch on Linux hosts.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = lib.genAttrs systems;
      testing = import ./nix/modules/run-test.nix {
        inherit lib;
        nixpkgs = nixpkgs.outPath;
      };
    in
    {
      lib = {
        # nixpkgs.lib.nixos.runTest with a TypeScript test script:
        #   runTest { hostPkgs = pkgs; imports = [ ./test.nix ]; }
        inherit (testing) runTest evalTest;
        # pkgs.testers.runNixOSTest with a TypeScript test script:
        #   runNixOSTest pkgs ./test.nix
        inherit (testing) runNixOSTest;
        # Without nixpkgs' module system, from evaluated node configurations
        # and start scripts (nix/lib/driver.nix documents the arguments):
        #   (mkTest pkgs { name; nodes; testScript = ./test.ts; }).test
        mkTest =
          pkgs:
          import ./nix/lib/driver.nix {
            inherit pkgs;
            nixos-test-ts = pkgs.callPackage ./nix/package.nix { };
          };
        # The manifest (lib/manifest.ts) of evaluated node configurations; pure builtins.
        manifest = import ./nix/lib/manifest.nix;
      };

      # pkgs.testers.runNixOSTestTs ./test.nix, and pkgs.nixos-test-ts.
      overlays.default = final: prev: {
        nixos-test-ts = final.callPackage ./nix/package.nix { };
        testers = prev.testers // {
          runNixOSTestTs =
            (import ./nix/modules/run-test.nix {
              inherit (final) lib;
              nixpkgs = final.path;
            }).runNixOSTest
              final;
        };
      };

      packages = forAllSystems (system: rec {
        nixos-test-ts = nixpkgs.legacyPackages.${system}.callPackage ./nix/package.nix { };
        default = nixos-test-ts;
      });

      templates.default = {
        path = ./nix/template;
        description = "A two-node NixOS test (nginx and curl) with a TypeScript test script";
      };

      # Example tests: they need a Linux builder with the nixos-test and kvm
      # system features (not run by this repository's own test suite).
      checks = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
        in
        {
          package = self.packages.${system}.default;
          template = testing.runNixOSTest pkgs ./nix/template/test.nix;
          vlans = testing.runNixOSTest pkgs ./nix/examples/vlans/test.nix;
        }
      );
    };
}
