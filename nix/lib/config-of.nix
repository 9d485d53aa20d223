# A test node as the functions here accept it: an evaluated NixOS
# configuration (`config.nodes.<name>` in nixpkgs' test framework), or
# anything holding one under `.config` (a `nixosSystem` result, a fixture).
node:
if node ? networking || node ? virtualisation || node ? systemd || node ? system || !(node ? config) then node else node.config
