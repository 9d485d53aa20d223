// Two nodes on vlan 1: a web server and a client. The machines are globals,
// typed from the evaluated configurations (see test.generated.ts after
// `nixos-test-ts typings --manifest manifest.json test.ts`).

await startAll();

// Different machines work concurrently: wait for both at once.
await Promise.all([server.waitForUnit("nginx.service"), client.waitForUnit("multi-user.target")]);
await server.waitForOpenPort(80);

await subtest("the client reaches the web server", async () => {
  const page = await client.succeed("curl --fail --silent http://server/");
  if (!page.includes("nginx")) throw new Error(`unexpected page: ${page}`);
});

await subtest("template units take any instance", async () => {
  await client.waitForUnit("getty@tty1.service");
});

await subtest("units created at run time need the escape hatch", async () => {
  await server.succeed("systemd-run --unit=probe.service sleep 60");
  await server.waitForUnit(runtimeUnit("probe.service"));
});

// Every machine, in parallel; `machines` is typed too.
await Promise.all(Object.values(machines).map((m) => m.succeed("systemctl is-system-running --wait || true")));
