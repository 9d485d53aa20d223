// The manifest schema: what the Nix layer writes, validated with messages that name the field and the value.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../../lib/errors.js";
import { parseManifest, type ManifestJson } from "../../lib/manifest.js";

function node(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { vlans: [1], units: ["sshd.service"], ports: { tcp: [22], udp: [] }, ...extra };
}

function manifest(nodes: Record<string, unknown>, extra: Record<string, unknown> = {}): ManifestJson {
  return { name: "t", vlans: [1], nodes, ...extra } as unknown as ManifestJson;
}

function rejects(json: unknown, field: string, message: RegExp): void {
  assert.throws(
    () => parseManifest(json, "manifest.json"),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.field, field);
      assert.match(error.message, /^manifest\.json: /);
      assert.match(error.message, message);
      return true;
    },
  );
}

test("a valid manifest is normalised: nodes, units and ports sorted, addresses in both forms, names defaulted", () => {
  const m = parseManifest(
    manifest(
      {
        server: node({
          units: ["sshd.service", "nginx.service", "getty@.service", "nginx.service"],
          ports: { tcp: [80, 22, 80], udp: [53] },
          addresses: { "1": "192.168.1.2" },
        }),
        client: node({ name: "client", hostname: "cl", addresses: [{ vlan: 1, address: "192.168.1.1" }] }),
      },
      { globalTimeout: 600 },
    ),
    "manifest.json",
  );
  assert.deepEqual(
    m.nodes.map((n) => n.name),
    ["client", "server"],
  );
  const [client, server] = m.nodes;
  assert.equal(client?.hostname, "cl");
  assert.deepEqual(client?.addresses, [{ vlan: 1, address: "192.168.1.1" }]);
  assert.equal(server?.hostname, "server");
  assert.deepEqual(server?.units, ["getty@.service", "nginx.service", "sshd.service"]);
  assert.deepEqual(server?.ports, { tcp: [22, 80], udp: [53] });
  assert.deepEqual(server?.addresses, [{ vlan: 1, address: "192.168.1.2" }]);
  assert.equal(m.globalTimeout, 600);
  assert.equal(m.strictPorts, false);
  assert.deepEqual(m.vlans, [1]);
});

test("binding names are sanitised as nixpkgs does; vlans without nodes get no binding", () => {
  const m = parseManifest(manifest({ "machine-a": node({ vlans: [] }), "1st": node({ vlans: [2] }) }, { vlans: [1, 2, 3] }), "m");
  assert.deepEqual(
    m.nodes.map((n) => [n.name, n.binding]),
    [
      ["1st", "_st"],
      ["machine-a", "machine_a"],
    ],
  );
  assert.deepEqual(m.vlans, [2]);
});

test("bad fields are named with the value found", () => {
  rejects({ vlans: [], nodes: {} }, "name", /name must be a non-empty string, got nothing \(the field is missing\)/);
  rejects(manifest({}, { bogus: 1 }), "bogus", /unknown field bogus/);
  rejects(manifest({}, { vlans: [0] }), "vlans[0]", /vlans\[0\] must be an integer ≥ 1, got 0/);
  rejects(manifest({}, { vlans: [256] }), "vlans[0]", /a vlan number from 1 to 255, got 256/);
  rejects(manifest({}, { globalTimeout: "1h" }), "globalTimeout", /globalTimeout must be a number ≥ 0, got "1h"/);
  rejects(manifest({ a: node({ vlans: [2] }) }), "nodes.a.vlans[0]", /must be one of the test's vlans \(1\), got 2/);
  rejects(manifest({ a: node({ units: ["sshd"] }) }), "nodes.a.units[0]", /must be a systemd unit name ending in \.service, .*got "sshd"/);
  rejects(manifest({ a: node({ units: "sshd.service" }) }), "nodes.a.units", /must be an array, got "sshd.service"/);
  rejects(manifest({ a: node({ ports: { tcp: [70000], udp: [] } }) }), "nodes.a.ports.tcp[0]", /a port from 1 to 65535, got 70000/);
  rejects(manifest({ a: node({ ports: { tcp: [22.5] } }) }), "nodes.a.ports.tcp[0]", /an integer ≥ 1, got 22.5/);
  rejects(manifest({ a: node({ addresses: { "1": "192.168.1.300" } }) }), "nodes.a.addresses.1", /an IPv4 address like 192\.168\.1\.2, got "192\.168\.1\.300"/);
  rejects(manifest({ a: node({ addresses: { "2": "192.168.2.1" } }) }), "nodes.a.addresses.2", /on one of the node's vlans \(1\), not on vlan 2/);
  rejects(manifest({ a: node({ addresses: [{ vlan: 1 }] }) }), "nodes.a.addresses[0].address", /must be a non-empty string/);
  rejects(manifest({ a: node({ name: "b" }) }), "nodes.a.name", /must be the node's attribute name "a", got "b"/);
  rejects(manifest({ a: node({ extra: true }) }), "nodes.a.extra", /unknown field nodes\.a\.extra/);
});

test("a node named like a reserved word or a script symbol gets a safe identifier (name_); two nodes with the same identifier are rejected", () => {
  for (const [name, binding] of [
    ["default", "default_"],
    ["log", "log_"],
    ["vlan2", "vlan2_"],
    ["machines", "machines_"],
    ["Promise", "Promise_"],
    ["getMachine", "getMachine_"],
    ["t", "t_"],
  ]) {
    const m = parseManifest(manifest({ [name as string]: node() }), "m");
    assert.equal(m.nodes[0]?.name, name);
    assert.equal(m.nodes[0]?.binding, binding);
  }
  rejects(manifest({ "a-b": node(), a_b: node() }), "nodes.a_b", /nodes "a-b" and "a_b" both become the identifier a_b/);
});

test("kind: nodes are VMs unless the manifest says container; anything else is named", () => {
  const base = {
    name: "k",
    vlans: [],
    nodes: { a: { vlans: [], units: [], ports: { tcp: [], udp: [] } }, b: { kind: "container", vlans: [], units: [], ports: { tcp: [], udp: [] } } },
  };
  const m = parseManifest(base, "manifest.json");
  assert.deepEqual(
    m.nodes.map((n) => [n.name, n.kind]),
    [
      ["a", "vm"],
      ["b", "container"],
    ],
  );
  assert.throws(
    () => parseManifest({ ...base, nodes: { c: { kind: "lxc", vlans: [], units: [], ports: { tcp: [], udp: [] } } } }, "manifest.json"),
    /nodes\.c\.kind.*"vm" or "container"/s,
  );
});
