await startAll();
await Promise.all(Object.values(machines).map((m) => m.waitForUnit("multi-user.target")));

await subtest("the router reaches both vlans, a and b only their own", async () => {
  await router.succeed("ping -c1 -W 5 192.168.1.1", "ping -c1 -W 5 192.168.2.2");
  await a.fail("ping -c1 -W 2 192.168.2.2");
});

await subtest("block() cuts the first vlan interface", async () => {
  await a.block();
  await a.fail("ping -c1 -W 2 192.168.1.3");
  await a.unblock();
  await a.waitUntilSucceeds("ping -c1 -W 1 192.168.1.3", { timeout: 60 });
});

log(`vlans in this test: ${[vlan1.nr, vlan2.nr].join(", ")}`);
