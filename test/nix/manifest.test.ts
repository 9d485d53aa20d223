// nix/lib/manifest.nix on config-shaped fixtures (attrsets shaped like
// evaluated NixOS configurations), with nix-instantiate --eval: numbering,
// vlans and addresses as nixpkgs' network.nix assigns them, units, ports.
// Every result must also pass lib/manifest.ts, the schema the generator reads.
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { parseManifest } from "../../lib/manifest.js";
import { NIX_LIB, evalError, evalJson, removeTempDirs, requireNix, tempDir } from "./helpers.js";

const manifestOf = (args: string) => evalJson(`import ${NIX_LIB}/manifest.nix ${args}`);

before(() => requireNix());
after(() => removeTempDirs());

test("two default nodes: vlan 1, numbered by sorted name, hostname = name, no units or ports", async () => {
  const m = await manifestOf(`{ name = "t"; nodes = { server.config = { }; client.config = { }; }; }`);
  assert.deepEqual(m, {
    name: "t",
    vlans: [1],
    nodes: {
      client: { name: "client", hostname: "client", vlans: [1], addresses: { "1": "192.168.1.1" }, units: [], ports: { tcp: [], udp: [] } },
      server: { name: "server", hostname: "server", vlans: [1], addresses: { "1": "192.168.1.2" }, units: [], ports: { tcp: [], udp: [] } },
    },
  });
  parseManifest(m, "manifest.nix");
});

test("hostName, vlans in interface order, named interfaces, nodeNumber from the config", async () => {
  const m = (await manifestOf(`{
    name = "net";
    nodes = {
      a.config = { networking.hostName = "alpha"; virtualisation.vlans = [ 2 1 ]; };
      # A named interface gets an address only with assignIP; without one, vlans default to [ ].
      b.config.virtualisation.interfaces = { eth5 = { vlan = 3; assignIP = true; }; eth6.vlan = 4; };
      c.config = { virtualisation.vlans = [ 1 ]; virtualisation.test.nodeNumber = 42; networking.hostName = ""; };
    };
  }`)) as { vlans: number[]; nodes: Record<string, { hostname: string; vlans: number[]; addresses: Record<string, string> }> };
  assert.deepEqual(m.vlans, [1, 2, 3, 4]);
  assert.equal(m.nodes.a?.hostname, "alpha");
  assert.deepEqual(m.nodes.a?.vlans, [1, 2]);
  assert.deepEqual(m.nodes.a?.addresses, { "1": "192.168.1.1", "2": "192.168.2.1" });
  assert.deepEqual(m.nodes.b?.vlans, [3, 4]);
  assert.deepEqual(m.nodes.b?.addresses, { "3": "192.168.3.2" });
  assert.equal(m.nodes.c?.hostname, "c", "an empty hostName falls back to the node's name");
  assert.deepEqual(m.nodes.c?.addresses, { "1": "192.168.1.42" });
  parseManifest(m, "manifest.nix");
});

test("numbering is nixpkgs': code-unit order of the names (capitals first), from 1", async () => {
  const m = (await manifestOf(`{ name = "order"; nodes = { b.config = { }; a.config = { }; Z.config = { }; "a-2".config = { }; }; }`)) as {
    nodes: Record<string, { addresses: Record<string, string> }>;
  };
  const numbers = Object.fromEntries(Object.entries(m.nodes).map(([n, v]) => [n, v.addresses["1"]]));
  assert.deepEqual(numbers, { Z: "192.168.1.1", a: "192.168.1.2", "a-2": "192.168.1.3", b: "192.168.1.4" });
});

test("units: systemd.units names, templates kept, sorted; names that are not units left out", async () => {
  const m = (await manifestOf(`{ name = "u"; nodes.machine.config.systemd.units = {
    "nginx.service" = { }; "getty@.service" = { }; "multi-user.target" = { }; "dev-disk-by\\\\x2dlabel-nixos.device" = { };
    "not a unit" = { }; "foo.conf" = { }; "x.target.wants" = { };
  }; }`)) as { nodes: { machine: { units: string[] } } };
  assert.deepEqual(m.nodes.machine.units, ["dev-disk-by\\x2dlabel-nixos.device", "getty@.service", "multi-user.target", "nginx.service"]);
  parseManifest(m, "manifest.nix");
});

test("ports: TCP and UDP, ranges expanded, per-interface ports, sorted and unique; huge ranges left out", async () => {
  const m = (await manifestOf(`{ name = "p"; nodes.web.config.networking.firewall = {
    allowedTCPPorts = [ 443 80 80 ];
    allowedTCPPortRanges = [ { from = 8000; to = 8002; } { from = 1024; to = 65535; } ];
    allowedUDPPorts = [ 53 ];
    interfaces.eth1 = { allowedTCPPorts = [ 22 ]; allowedUDPPortRanges = [ { from = 60000; to = 60001; } ]; };
  }; }`)) as { nodes: { web: { ports: { tcp: number[]; udp: number[] } } } };
  assert.deepEqual(m.nodes.web.ports, { tcp: [22, 80, 443, 8000, 8001, 8002], udp: [53, 60000, 60001] });
  parseManifest(m, "manifest.nix");
});

test("globalTimeout and strictPorts appear only when given", async () => {
  const plain = (await manifestOf(`{ name = "x"; nodes.m.config = { }; }`)) as Record<string, unknown>;
  assert.equal("globalTimeout" in plain, false);
  assert.equal("strictPorts" in plain, false);
  const set = (await manifestOf(`{ name = "x"; nodes.m.config = { }; globalTimeout = 120; strictPorts = true; }`)) as Record<string, unknown>;
  assert.equal(set.globalTimeout, 120);
  assert.equal(set.strictPorts, true);
  assert.equal(parseManifest(set, "manifest.nix").strictPorts, true);
});

test("the shapes a node comes in: a configuration, one under .config; nodesCompat's warning .config is never touched", async () => {
  const m = (await manifestOf(`{ name = "s"; nodes = {
    direct = { networking.hostName = "d"; systemd.units."a.service" = { }; };
    wrapped = { config.networking.hostName = "w"; options = { }; };
    compat = { networking.hostName = "c"; config = throw "nodes.compat.config is deprecated"; };
  }; }`)) as { nodes: Record<string, { hostname: string; units: string[] }> };
  assert.deepEqual(Object.fromEntries(Object.entries(m.nodes).map(([n, v]) => [n, v.hostname])), { compat: "c", direct: "d", wrapped: "w" });
  assert.deepEqual(m.nodes.direct?.units, ["a.service"]);
});

test("more than 254 machines (nodes and containers) is an evaluation error naming the limit", async () => {
  const err = await evalError(
    `import ${NIX_LIB}/manifest.nix { name = "big"; nodes = builtins.listToAttrs (builtins.genList (i: { name = "n\${toString i}"; value.config = { }; }) 255); }`,
  );
  assert.match(err, /255 machines, but at most 254/);
});

test("manifest-units.mjs adds the unit files of a unit directory, not its .wants/.d directories", async () => {
  const dir = await tempDir("ntt-units-");
  const units = join(dir, "etc", "systemd", "system");
  await mkdir(join(units, "multi-user.target.wants"), { recursive: true });
  await mkdir(join(units, "sshd.service.d"));
  for (const f of ["sshd.service", "getty@.service", "default.target", "README"]) await writeFile(join(units, f), "");
  await writeFile(
    join(dir, "m.json"),
    JSON.stringify({ name: "u", vlans: [1], nodes: { a: { name: "a", vlans: [1], units: ["web.service"], ports: { tcp: [], udp: [] } } } }),
  );
  await writeFile(join(dir, "dirs.json"), JSON.stringify({ a: [units] }));
  const r = spawnSync(process.execPath, [join(NIX_LIB, "manifest-units.mjs"), join(dir, "m.json"), join(dir, "dirs.json"), join(dir, "out.json")], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(await readFile(join(dir, "out.json"), "utf8"));
  assert.deepEqual(out.nodes.a.units, ["default.target", "getty@.service", "sshd.service", "web.service"]);
  parseManifest(out, "out.json");

  await writeFile(join(dir, "dirs.json"), JSON.stringify({ a: [join(dir, "missing")] }));
  const bad = spawnSync(process.execPath, [join(NIX_LIB, "manifest-units.mjs"), join(dir, "m.json"), join(dir, "dirs.json"), join(dir, "out.json")], {
    encoding: "utf8",
  });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /node a: cannot list the unit directory .*missing/);
});

test('containers: in the same nodes record with kind = "container", numbered with the nodes by sorted name, vlans shared', async () => {
  const m = (await manifestOf(`{
    name = "mixed";
    nodes = { web.config.virtualisation.vlans = [ 1 ]; client.config = { }; };
    containers = {
      db.config = { virtualisation.vlans = [ 1 2 ]; systemd.units."postgresql.service" = { }; networking.firewall.allowedTCPPorts = [ 5432 ]; };
      cache.config = { };
    };
  }`)) as {
    vlans: number[];
    nodes: Record<string, { kind?: string; vlans: number[]; addresses: Record<string, string>; units: string[]; ports: { tcp: number[] } }>;
  };
  assert.deepEqual(Object.keys(m.nodes).sort(), ["cache", "client", "db", "web"]);
  assert.equal(m.nodes.db?.kind, "container");
  assert.equal(m.nodes.cache?.kind, "container");
  assert.equal(m.nodes.web?.kind, undefined, "a VM node has no kind (the schema's default is vm)");
  // nixpkgs numbers allMachines = nodes // containers: cache 1, client 2, db 3, web 4.
  assert.deepEqual(m.nodes.cache?.addresses, { "1": "192.168.1.1" });
  assert.deepEqual(m.nodes.client?.addresses, { "1": "192.168.1.2" });
  assert.deepEqual(m.nodes.db?.addresses, { "1": "192.168.1.3", "2": "192.168.2.3" });
  assert.deepEqual(m.nodes.web?.addresses, { "1": "192.168.1.4" });
  assert.deepEqual(m.vlans, [1, 2]);
  assert.deepEqual(m.nodes.db?.units, ["postgresql.service"]);
  assert.deepEqual(m.nodes.db?.ports.tcp, [5432]);
});

test("a name in both nodes and containers is refused, as nixpkgs refuses it", async () => {
  const err = await evalError(`import ${NIX_LIB}/manifest.nix { name = "x"; nodes.db.config = { }; containers.db.config = { }; }`);
  assert.match(err, /these names are both in `nodes` and in `containers`: db; machine names must be unique/);
});
