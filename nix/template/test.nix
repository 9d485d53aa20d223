# A nixpkgs test module, as for pkgs.testers.runNixOSTest; only testScript
# differs: a TypeScript file, checked against these nodes when the driver is
# built (a unit or machine that does not exist is a build error).
{
  name = "two-nodes";

  nodes.server =
    { pkgs, ... }:
    {
      services.nginx = {
        enable = true;
        virtualHosts.server.root = pkgs.writeTextDir "index.html" "hello from nginx";
      };
      networking.firewall.allowedTCPPorts = [ 80 ];
    };

  nodes.client =
    { pkgs, ... }:
    {
      environment.systemPackages = [ pkgs.curl ];
    };

  testScript = ./test.ts;
}
