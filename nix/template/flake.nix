{
  description = "A NixOS VM test with a TypeScript test script (nixos-test-ts)";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    nixos-test-ts = {
      url = "github:OWNER/nixos-test-ts"; # where you got nixos-test-ts from
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    { nixpkgs, nixos-test-ts, ... }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
    in
    {
      # nix build .#checks.x86_64-linux.two-nodes                  run it (result/: log.xml, junit.xml, report.html)
      # nix build .#checks.x86_64-linux.two-nodes.driver           only the type check and the driver
      # nix run .#checks.x86_64-linux.two-nodes.driverInteractive  a REPL with the VMs
      checks.${system}.two-nodes = nixos-test-ts.lib.runNixOSTest pkgs ./test.nix;
    };
}
