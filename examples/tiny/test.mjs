// A two-machine test on the built-in tiny Debian guests (no vlans: each
// machine talks to the driver only). Run it with scripts/example.sh.
// Machines, startAll, subtest, log ... are globals, as in nixpkgs' Python
// test scripts; they can also be imported from "nixos-test-ts".
import assert from "node:assert/strict";

await startAll();

await subtest("both machines answer, concurrently", async () => {
  const [a, b] = await Promise.all([client.succeed("hostname"), server.succeed("hostname")]);
  assert.equal(a.trim(), "client");
  assert.equal(b.trim(), "server");
});

await subtest("files travel host → guest → host", async () => {
  await server.succeed("mkdir -p /srv/www && echo 'hello from server' > /srv/www/index.html");
  const copied = await server.copyFromMachine("/srv/www/index.html", "server");
  log(`copied to ${copied}`);
});

await subtest("waits poll quickly", async () => {
  await client.succeed("(sleep 2; touch /tmp/ready) >/dev/null 2>&1 &");
  await client.waitForFile("/tmp/ready", { timeout: 30 });
  await client.fail("test -e /tmp/not-there");
});

await Promise.all([client.shutdown(), server.shutdown()]);
