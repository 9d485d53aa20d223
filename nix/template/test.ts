// `server` and `client` are typed from test.nix: their units, ports and vlans.
// For your editor: nixos-test-ts typings --manifest <the test's manifest.json> test.ts
// (nix build .#checks.x86_64-linux.two-nodes.manifest gives the manifest).

await startAll();

// Different machines work concurrently: wait for both at once.
await Promise.all([server.waitForUnit("nginx.service"), client.waitForUnit("multi-user.target")]);
await server.waitForOpenPort(80);

await subtest("the client fetches the page", async () => {
  const page = await client.succeed("curl --fail --silent http://server/");
  if (!page.includes("hello from nginx")) throw new Error(`unexpected page: ${page}`);
});
