# The test manifest (schema: lib/manifest.ts) from evaluated node
# configurations, with nothing but builtins, so that it evaluates without
# nixpkgs (test/nix/manifest.test.ts runs it on config-shaped fixtures).
#
#   import ./manifest.nix {
#     name = "two-nodes";
#     nodes = { server = <evaluated NixOS config>; client = …; };
#     globalTimeout = 3600;   # optional
#     strictPorts = false;    # optional
#     values = { };           # optional: JSON-able values for the script (its `values` export)
#     containers = { };       # optional: name -> evaluated configuration of a systemd-nspawn container
#   }
#
# Containers (nixpkgs' `containers.<name>`) are machines like nodes, in the
# same `nodes` record of the manifest with `kind = "container"`; names are
# unique across both, and numbers (hence addresses) follow the sorted names
# of both, as nixpkgs' network.nix numbers `allMachines`.
#
# A node is an evaluated configuration (`config.nodes.<name>` in nixpkgs'
# test framework) or anything with it under `.config` (a `nixosSystem`
# result, `nodes.<name>` of the module arguments). Only these options are
# read, each with the NixOS default when absent:
#
#   networking.hostName                      default: the node's name (nixpkgs: mkDefault nodeName)
#   virtualisation.vlans                     default: [ 1 ] when virtualisation.interfaces is empty, else [ ]
#   virtualisation.interfaces.<if>           { vlan; assignIP ? false; }
#   virtualisation.test.nodeNumber           default: position in the sorted node names, from 1
#   systemd.units                            attribute names; templates as foo@.service
#   networking.firewall.allowed{TCP,UDP}Ports, allowed{TCP,UDP}PortRanges
#   networking.firewall.interfaces.<if>.allowed{TCP,UDP}Ports{,Ranges}
#
# Addresses are nixpkgs' (nixos/lib/testing/network.nix): interface k of
# `virtualisation.vlans` gets 192.168.<vlan>.<nodeNumber>; named interfaces
# get one only with assignIP. Units are those of `systemd.units`, which misses
# the units packages and systemd itself install: nix/lib/driver.nix adds those
# at build time from the system's unit directory (manifest-units.mjs).
{
  name,
  nodes,
  globalTimeout ? null,
  strictPorts ? false,
  values ? { },
  containers ? { },
}:
let
  inherit (builtins)
    attrNames
    attrValues
    concatLists
    concatMap
    filter
    foldl'
    genList
    length
    listToAttrs
    mapAttrs
    match
    sort
    ;

  configOf = import ./config-of.nix;

  get = path: default: attrs:
    if path == [ ] then attrs
    else if builtins.isAttrs attrs && attrs ? ${builtins.head path} then get (builtins.tail path) default attrs.${builtins.head path}
    else default;

  unique = list: foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ] list;
  sortedUnique = list: sort builtins.lessThan (unique list);

  # The unit suffixes lib/manifest.ts accepts; anything else in systemd.units
  # (there is nothing else in NixOS) would make the manifest invalid.
  unitName = "[^[:space:]/]+\\.(service|socket|target|device|mount|automount|swap|path|timer|slice|scope)";
  isUnit = n: match unitName n != null;

  # Ranges are expanded into ports (the manifest has no ranges), up to this
  # many per range; a wider range (an FTP passive range, a whole ephemeral
  # span) is left out rather than turned into a union type of thousands.
  maxRange = 1024;
  expandRange = r:
    let
      from = r.from;
      to = r.to;
    in
    if to < from || to - from + 1 > maxRange then [ ] else genList (i: from + i) (to - from + 1);

  portsOf = proto: fw:
    (get [ "allowed${proto}Ports" ] [ ] fw) ++ concatMap expandRange (get [ "allowed${proto}PortRanges" ] [ ] fw);

  firewallPorts = proto: cfg:
    let
      fw = get [ "networking" "firewall" ] { } cfg;
      perInterface = attrValues (get [ "interfaces" ] { } fw);
    in
    sort builtins.lessThan (unique (portsOf proto fw ++ concatMap (portsOf proto) perInterface));

  overlapping = filter (n: containers ? ${n}) (attrNames nodes);
  allMachines = nodes // containers;
  names = sort builtins.lessThan (attrNames allMachines);
  positions = listToAttrs (genList (i: {
    name = builtins.elemAt names i;
    value = i + 1;
  }) (length names));

  nodeInfo = nodeName: node:
    let
      cfg = configOf node;
      interfaces = get [ "virtualisation" "interfaces" ] { } cfg;
      vlans = get [ "virtualisation" "vlans" ] (if interfaces == { } then [ 1 ] else [ ]) cfg;
      number = get [ "virtualisation" "test" "nodeNumber" ] positions.${nodeName} cfg;
      named = map (i: interfaces.${i}) (attrNames interfaces);
      addressed = vlans ++ map (i: i.vlan) (filter (i: i.assignIP or false) named);
      # The manifest has one address per vlan: the first interface on it.
      addresses = foldl' (
        acc: vlan: if acc ? ${toString vlan} then acc else acc // { ${toString vlan} = "192.168.${toString vlan}.${toString number}"; }
      ) { } addressed;
      hostName = get [ "networking" "hostName" ] "" cfg;
    in
    {
      name = nodeName;
      hostname = if hostName == "" || hostName == null then nodeName else hostName;
      vlans = sortedUnique (vlans ++ map (i: i.vlan) named);
      inherit addresses;
      units = sortedUnique (filter isUnit (attrNames (get [ "systemd" "units" ] { } cfg)));
      ports = {
        tcp = firewallPorts "TCP" cfg;
        udp = firewallPorts "UDP" cfg;
      };
    };

  manifestNodes = mapAttrs nodeInfo nodes // mapAttrs (n: c: nodeInfo n c // { kind = "container"; }) containers;
in
assert overlapping == [ ] || throw "manifest.nix: these names are both in `nodes` and in `containers`: ${builtins.concatStringsSep ", " overlapping}; machine names must be unique";
assert builtins.isString name && name != "" || throw "manifest.nix: `name` must be a non-empty string";
assert length names <= 254 || throw "manifest.nix: ${toString (length names)} machines, but at most 254 fit on a vlan (192.168.<vlan>.1-254)";
{
  inherit name;
  vlans = sortedUnique (concatLists (map (n: n.vlans) (attrValues manifestNodes)));
  nodes = manifestNodes;
}
// (if globalTimeout == null then { } else { inherit globalTimeout; })
// (if strictPorts then { strictPorts = true; } else { })
// (if values == { } then { } else { inherit values; })
