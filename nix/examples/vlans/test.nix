# Three nodes on two vlans: `router` is on both, `a` and `b` on one each.
# The script gets vlan1 and vlan2; an address is 192.168.<vlan>.<node number>
# (node numbers follow the sorted node names: a = 1, b = 2, router = 3).
{
  name = "vlans";

  nodes = {
    a.virtualisation.vlans = [ 1 ];
    b.virtualisation.vlans = [ 2 ];
    router = {
      virtualisation.vlans = [ 1 2 ];
      boot.kernel.sysctl."net.ipv4.ip_forward" = 1;
    };
  };

  testScript = ./test.ts;
}
