// The build-time check in process: each mistake fails with the user's file:line:col, the good scripts pass.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { checkScript, ONE_NODE, ROOT, TWO_NODES } from "./helpers.js";

/** The printed diagnostic starts with `test.ts:<line>:<col> <severity> <code>`, followed by the line and a caret. */
function assertFinding(printed: string, line: number, column: number, severity: string, code: string, message?: RegExp): void {
  const head = `test.ts:${line}:${column} ${severity} ${code} `;
  const at = printed.indexOf(head);
  assert.ok(at !== -1, `expected "${head}…" in:\n${printed}`);
  const block = printed.slice(at).split("\n\n").slice(0, 2).join("\n\n");
  if (message !== undefined) assert.match(block, message);
  assert.match(
    block,
    new RegExp(`\\n  ${line} \\| .*\\n  ${" ".repeat(String(line).length)} \\| ${" ".repeat(column - 1)}\\^`),
    `code frame with a caret under column ${column}:\n${block}`,
  );
}

test("an unknown machine is a type error at its line (client's units are the shared ones, hence the name)", async () => {
  const r = await checkScript(TWO_NODES, ["await startAll();", 'await server.succeed("true");', 'await machine3.succeed("true");']);
  assert.equal(r.errors, 1, r.printed);
  assertFinding(r.printed, 3, 7, "error", "TS2552", /Cannot find name 'machine3'. Did you mean 'machines'\?/);
  assert.equal(r.emitted, undefined, "nothing is emitted when the check fails");
});

test("an unknown machine imported from the generated module is an error too", async () => {
  const r = await checkScript(TWO_NODES, ['import { server, machine3 } from "./test.generated.js";', 'await server.succeed("true");']);
  assertFinding(r.printed, 1, 18, "error", "TS2724", /has no exported member named 'machine3'/);
});

test("a misspelled method names the right one", async () => {
  const r = await checkScript(ONE_NODE, ["", '  await machine.succed("true");']);
  assertFinding(r.printed, 2, 17, "error", "TS2551", /Property 'succed' does not exist .*Did you mean 'succeed'\?/);
});

test("a unit the node lacks is an error at its line naming the nearest units and the node that has it", async () => {
  const r = await checkScript(TWO_NODES, [
    'await server.waitForUnit("nginx.service");',
    'await client.waitForUnit("nginx.service");',
    'await server.waitForUnit("ngnix.service");',
  ]);
  assert.equal(r.errors, 2, r.printed);
  assertFinding(
    r.printed,
    2,
    26,
    "error",
    "lint/unknown-unit",
    /node client declares no unit `nginx\.service`\..*Node server has it: `server\.waitForUnit\(…\)`\?/,
  );
  assertFinding(r.printed, 3, 26, "error", "lint/unknown-unit", /node server declares no unit `ngnix\.service`\. Nearest units of server: `nginx\.service`/);
  assert.doesNotMatch(r.printed, /TS2345/, "the type error at the same place is replaced by the explanation");
});

test("a unit as nixpkgs tests write it: `nginx` is nginx.service, on the node that has it only", async () => {
  const r = await checkScript(TWO_NODES, [
    'await server.waitForUnit("nginx");',
    'await server.startJob("sshd");',
    'await client.waitForUnit("nginx");',
    'await client.waitForUnit("getty@tty1");',
  ]);
  assert.equal(r.errors, 1, r.printed);
  assertFinding(
    r.printed,
    3,
    26,
    "error",
    "lint/unknown-unit",
    /node client declares no unit `nginx\.service` \(what systemd reads `nginx` as\)\..*Node server has it/,
  );
});

test("a template without an instance is an error (systemd refuses it), with or without its suffix", async () => {
  const r = await checkScript(TWO_NODES, [
    'await server.waitForUnit("getty@.service");',
    'await client.stopJob("getty@");',
    'await client.waitForUnit("getty@ttyS0.service");',
  ]);
  assert.equal(r.errors, 2, r.printed);
  assertFinding(r.printed, 1, 26, "error", "lint/unknown-unit", /`getty@\.service` is a template unit without an instance.*`getty@<instance>\.service`/);
  assertFinding(r.printed, 2, 22, "error", "lint/unknown-unit", /`getty@` is a template unit without an instance/);
});

test("with the lint off, the type check still refuses an undeclared unit", async () => {
  const r = await checkScript(TWO_NODES, ['await client.waitForUnit("nginx.service");'], { skipLint: true });
  assertFinding(r.printed, 1, 26, "error", "TS2345", /'"nginx.service"' is not assignable to parameter of type 'ClientUnits \| RuntimeUnit'|UnitsOfEveryNode/);
});

test("every unit method is checked, not only waitForUnit", async () => {
  const r = await checkScript(TWO_NODES, [
    'await client.getUnitInfo("nginx.service");',
    'await client.getUnitProperty("nginx.service", "ActiveState");',
    'await client.requireUnitState("nginx.service");',
    'await client.startJob("nginx.service");',
    'await client.stopJob("nginx.service");',
    'await client.waitForJob("nginx.service");',
  ]);
  assert.equal(r.errors, 6, r.printed);
  for (let line = 1; line <= 6; line++) assert.match(r.printed, new RegExp(`test\\.ts:${line}:\\d+ error lint/unknown-unit`));
});

test("template units accept any instance; units created at run time pass through runtimeUnit", async () => {
  const r = await checkScript(TWO_NODES, [
    'await client.waitForUnit("getty@tty1.service");',
    'await server.waitForUnit("getty@ttyS0.service");',
    'await server.waitForUnit(runtimeUnit("probe.service"));',
    'await client.stopJob(runtimeUnit("transient-1.scope"));',
  ]);
  assert.equal(r.printed, "");
  assert.ok(r.emitted !== undefined);
});

test("the escape hatch and every binding also work by import", async () => {
  const r = await checkScript(TWO_NODES, [
    'import { client, server, machines, vlan1, vlans, runtimeUnit, type ServerMachine, type TestMachine } from "./test.generated.js";',
    "const s: ServerMachine = server;",
    "const all: TestMachine[] = [client, server, machines.client];",
    'async function ping(m: TestMachine): Promise<string> { return m.succeed("true"); }',
    "await Promise.all(all.map(ping));",
    'await s.waitForUnit(runtimeUnit("probe.service"));',
    "const nr: number = vlan1.nr + vlans[1].nr;",
    'import { CommandFailedError, subtest as step } from "nixos-test-ts";',
    'const e: unknown = await server.succeed("exit 3").catch((x: unknown) => x);',
    "if (e instanceof CommandFailedError) await step(`exit ${e.exitCode}`, async () => undefined);",
  ]);
  assert.equal(r.printed, "");
});

test("a vlan no node is on does not exist", async () => {
  const r = await checkScript(TWO_NODES, ["const a = vlan1.nr;", "const b = vlan3.nr;", "const c = vlans[3];"]);
  assertFinding(r.printed, 2, 11, "error", "TS2552", /Cannot find name 'vlan3'. Did you mean 'vlan1'\?/);
  assertFinding(r.printed, 3, 11, "error", "TS7053", /Property '3' does not exist on type 'VLans'/);
});

test("an undeclared port is a warning naming the node's ports, and the check passes", async () => {
  const r = await checkScript(TWO_NODES, [
    "await server.waitForOpenPort(80);",
    "await server.waitForOpenPort(8080);",
    "await client.forwardPort({ hostPort: 2222, guestPort: 80 });",
  ]);
  assert.equal(r.errors, 0, r.printed);
  assert.equal(r.warnings, 2, r.printed);
  assertFinding(r.printed, 2, 30, "warning", "lint/undeclared-port", /port 8080 is not open in the firewall of node server: its open TCP ports are 22, 80/);
  assertFinding(r.printed, 3, 55, "warning", "lint/undeclared-port", /port 80 .* node client: its open TCP ports are 22/);
  assert.ok(r.emitted !== undefined, "warnings do not stop the emit");
});

test("under strict ports an undeclared port is an error (CLI option or manifest)", async () => {
  const lines = ["await server.waitForOpenPort(22);", "await server.waitForClosedPort(8080);"];
  const byOption = await checkScript(TWO_NODES, lines, { strictPorts: true });
  assert.equal(byOption.errors, 1, byOption.printed);
  assertFinding(byOption.printed, 2, 32, "error", "lint/undeclared-port", /port 8080/);
  const byManifest = await checkScript({ ...TWO_NODES, strictPorts: true }, lines);
  assertFinding(byManifest.printed, 2, 32, "error", "lint/undeclared-port");
  const variable = await checkScript(TWO_NODES, ["const port = 8080 as number;", "await server.waitForOpenPort(port);"], { strictPorts: true });
  assert.equal(variable.printed, "", "only literals are checked: a computed port is the user's business");
});

test("a missing await is an error: driver calls, then without a rejection handler", async () => {
  const r = await checkScript(TWO_NODES, [
    'server.succeed("true");',
    'await server.succeed("true");',
    'void server.succeed("in the background, on purpose");',
    "server.succeed('x').then((out) => log(out));",
    "server.succeed('x').then((out) => log(out), () => undefined);",
    "server.succeed('x').catch(() => undefined);",
    "server.succeed('x').finally(() => log('done'));",
    "subtest('x', async () => { client.waitForUnit('sshd.service'); });",
  ]);
  assert.equal(r.errors, 5, r.printed);
  assertFinding(r.printed, 1, 1, "error", "lint/floating-promise", /`server.succeed\(…\)` is a promise that nobody awaits/);
  assertFinding(r.printed, 4, 1, "error", "lint/floating-promise", /handles success only/);
  assertFinding(r.printed, 7, 1, "error", "lint/floating-promise", /`server.succeed\('x'\).finally\(…\)` is a promise/);
  assertFinding(r.printed, 8, 1, "error", "lint/floating-promise", /`subtest\(…\)`/);
  assert.match(r.printed, /test\.ts:8:28 error lint\/floating-promise `client\.waitForUnit\(…\)`/, "inside callbacks too");
});

test("an array of promises must go through Promise.all/allSettled/any/race", async () => {
  const r = await checkScript(TWO_NODES, [
    '[server.succeed("a"), client.succeed("b")];',
    'Object.values(machines).map((m) => m.succeed("c"));',
    'await Promise.all([server.succeed("a"), client.succeed("b")]);',
    'await Promise.allSettled(Object.values(machines).map((m) => m.succeed("c")));',
    'await [server.succeed("a")];',
    'Object.values(machines).forEach(async (m) => { await m.succeed("d"); });',
  ]);
  assert.equal(r.errors, 4, r.printed);
  assertFinding(r.printed, 1, 1, "error", "lint/promise-array", /wrap it in `await Promise.all\(…\)`/);
  assertFinding(r.printed, 2, 1, "error", "lint/promise-array");
  assertFinding(r.printed, 5, 1, "error", "lint/promise-array", /`await` of an array does not wait/);
  assertFinding(r.printed, 6, 33, "error", "lint/misused-promise", /forEach` expects a function that returns nothing/);
});

test("all findings are reported at once, in line order", async () => {
  const r = await checkScript(TWO_NODES, ["machine3;", 'server.succeed("x");', 'await server.waitForUnit("nope.service");', "[server.succeed('y')];"]);
  assert.equal(r.errors, 4, r.printed);
  const lines = [...r.printed.matchAll(/^test\.ts:(\d+):/gm)].map((m) => Number(m[1]));
  assert.deepEqual(lines, [1, 2, 3, 4]);
});

test("skipLint lets a floating promise through; skipTypeCheck lets a type error through", async () => {
  const floating = ['server.succeed("true");'];
  assert.equal((await checkScript(TWO_NODES, floating)).errors, 1);
  const lintSkipped = await checkScript(TWO_NODES, floating, { skipLint: true });
  assert.equal(lintSkipped.printed, "");
  assert.ok(lintSkipped.emitted !== undefined);

  const typeError = ["await server.succeed(42);"];
  assert.equal((await checkScript(TWO_NODES, typeError)).errors, 1);
  const typesSkipped = await checkScript(TWO_NODES, typeError, { skipTypeCheck: true });
  assert.equal(typesSkipped.printed, "");
  assert.ok(typesSkipped.emitted !== undefined);

  const syntax = await checkScript(TWO_NODES, ["await server.succeed(;"], { skipTypeCheck: true, skipLint: true });
  assertFinding(syntax.printed, 1, 22, "error", "TS1005", /'\)' expected/);
});

test("the example two-node script passes, and its JS is an ES module with a source map to the user's file", async () => {
  const script = readFileSync(join(ROOT, "examples", "two-nodes", "test.ts"), "utf8")
    .replace(/\n$/, "")
    .split("\n");
  const manifest = JSON.parse(readFileSync(join(ROOT, "examples", "two-nodes", "manifest.json"), "utf8")) as Record<string, unknown>;
  const r = await checkScript(manifest, script);
  assert.equal(r.printed, "");
  assert.equal(r.emitted, join(r.dir.out, "test.js"));
  const js = readFileSync(r.emitted, "utf8");
  assert.match(js, /^import "\.\/test\.generated\.js";\n/, "the script loads the bindings first");
  assert.match(js, /\/\/# sourceMappingURL=test\.js\.map$/);
  const map = JSON.parse(readFileSync(`${r.emitted}.map`, "utf8")) as { sources: string[] };
  assert.deepEqual(
    map.sources.map((s) => resolve(dirname(r.emitted as string), s)),
    [r.dir.script],
  );
  assert.deepEqual(JSON.parse(readFileSync(join(r.dir.out, "package.json"), "utf8")), { type: "module" });
  assert.match(readFileSync(join(r.dir.out, "test.generated.js"), "utf8"), /getMachine\("server"\)/);
});

test("Node's built-ins are usable without @types/node (untyped), and typed with nodeTypes", async () => {
  const lines = [
    'import assert from "node:assert/strict";',
    'import { readFileSync } from "node:fs";',
    'console.log(process.env.HOME, readFileSync("/etc/hostname", "utf8"));',
    'assert.equal(await server.succeed("hostname"), "server\\n");',
    "setTimeout(() => undefined, AbortSignal.timeout(10).aborted ? 1 : 2);",
  ];
  assert.equal((await checkScript(TWO_NODES, lines)).printed, "");
  const typed = await checkScript(TWO_NODES, [...lines, 'readFileSync(42, "nonsense-encoding");'], { nodeTypes: true });
  assert.equal(typed.errors, 1, typed.printed);
  assertFinding(typed.printed, 6, 18, "error", "TS2769");
});

test("calls on all machines at once stay tractable with 20 nodes of 300 units", async () => {
  const units = (i: number): string[] => [...Array.from({ length: 290 }, (_, k) => `unit-${k}.service`), `only-on-${i}.service`, "getty@.service"];
  const nodes = Object.fromEntries(
    Array.from({ length: 20 }, (_, i) => [`node${i + 1}`, { vlans: [1], units: units(i), ports: { tcp: [22, 1000 + i], udp: [] } }]),
  );
  const r = await checkScript({ name: "big", vlans: [1], nodes }, [
    'await Promise.all(Object.values(machines).map((m) => m.waitForUnit("unit-7.service")));',
    "await Promise.all([node1, node2, node3, node4, node5, node6, node7, node8, node9, node10, node11, node12].map((m) => m.waitForOpenPort(22)));",
    'for (const m of Object.values(machines)) await m.waitForUnit("getty@tty1.service");',
    'await node20.waitForUnit("only-on-0.service");',
  ]);
  // A union of machines accepts a unit any of them has (exact per-node checks are for single machines).
  assert.equal(r.errors, 1, r.printed);
  assertFinding(
    r.printed,
    4,
    26,
    "error",
    "lint/unknown-unit",
    /node node20 declares no unit `only-on-0\.service`\. Nearest units of node20: `only-on-19\.service`\. Node node1 has it/,
  );
});

test("values from Nix: a typed readonly export with literal types; a typo in a name fails the check", async () => {
  const manifest = {
    ...TWO_NODES,
    values: {
      serverIp: "192.168.1.2",
      hello: "/nix/store/0000000000000000000000000000000a-hello/bin/hello",
      port: 80,
      flags: ["-v"],
      nested: { on: true, none: null },
    },
  };
  const good = await checkScript(manifest, [
    'const ip: "192.168.1.2" = values.serverIp;',
    "await client.succeed(`ping -c1 ${ip}`, `${values.hello} --version`);",
    "await server.waitForOpenPort(values.port);",
    'const flag: "-v" = values.flags[0];',
    "const on: true = values.nested.on;",
    'import { values as v } from "./test.generated.js";',
    "log(`${flag} ${String(on)} ${String(v.nested.none)}`);",
  ]);
  assert.equal(good.printed, "");
  const js = readFileSync(join(good.dir.out, "test.generated.js"), "utf8");
  const emitted = /export const values = (.*);\n/.exec(js)?.[1];
  assert.deepEqual(JSON.parse(emitted ?? "null"), manifest.values, "the values are in the emitted JS, so their store paths are the script's references");

  const bad = await checkScript(manifest, [
    "await client.succeed(`ping -c1 ${values.serverIP}`);",
    'values.serverIp = "10.0.0.1";',
    "const n: string = values.port;",
  ]);
  assert.equal(bad.errors, 3, bad.printed);
  assertFinding(bad.printed, 1, 41, "error", "TS2551", /Property 'serverIP' does not exist on type 'Values'. Did you mean 'serverIp'\?/);
  assertFinding(bad.printed, 2, 8, "error", "TS2540", /Cannot assign to 'serverIp' because it is a read-only property/);
  assertFinding(bad.printed, 3, 7, "error", "TS2322", /Type '(80|number)' is not assignable to type 'string'/);
});

test("without values, `values` is an empty object: any name is a type error", async () => {
  const r = await checkScript(TWO_NODES, ["log(values.anything);"]);
  assertFinding(r.printed, 1, 12, "error", "TS2339", /Property 'anything' does not exist on type '\{\}'|on type 'Values'/);
});

test("nixpkgs' names: t assertions, log.info/warning/error/nested, machines as an array and by name", async () => {
  const r = await checkScript(TWO_NODES, [
    'const out = await server.succeed("hostname");',
    't.assertEqual(out.trim(), "server", "hostname");',
    't.assertIn("server", out);',
    'log.info("info"); log.warning("warning"); log.error("error"); log("plain");',
    'await log.nested("a block", async () => { await client.succeed("true"); });',
    'for (const m of machines) await m.succeed("true");',
    'await Promise.all(machines.map((m) => m.succeed("true")));',
    "const s: ServerMachine = machines.server;",
    "const n: number = machines.length;",
    'import type { ServerMachine } from "./test.generated.js";',
    "log(`${s.name} ${n}`);",
  ]);
  assert.equal(r.printed, "");
  const bad = await checkScript(TWO_NODES, ["t.assertEquals(1, 1);", 'log.warn("x");']);
  assertFinding(bad.printed, 1, 3, "error", "TS2551", /Property 'assertEquals' does not exist.*Did you mean 'assertEqual'\?/);
  assertFinding(bad.printed, 2, 5, "error", "TS2339", /Property 'warn' does not exist/);
});

test("a node named like a reserved word is there as name_, its machine keeps its name", async () => {
  const manifest = {
    name: "reserved",
    vlans: [1],
    nodes: { default: { vlans: [1], units: [], ports: { tcp: [], udp: [] } }, log: { vlans: [1], units: [], ports: { tcp: [], udp: [] } } },
  };
  const r = await checkScript(manifest, [
    'await default_.succeed("true");',
    'log_.log("from the node named log");',
    'log("the logger is still log");',
    'const d: "default" = machines.default.name;',
    "log(d);",
  ]);
  assert.equal(r.printed, "");
  const js = readFileSync(join(r.dir.out, "test.generated.js"), "utf8");
  assert.match(js, /export const default_ = getMachine\("default"\)/);
});

test("a container node has no VM-only methods: db.screenshot() fails the check at the user's line", async () => {
  const manifest = {
    name: "vm-and-container",
    vlans: [1],
    nodes: {
      server: { vlans: [1], units: ["multi-user.target"], ports: { tcp: [22], udp: [] } },
      db: { kind: "container", vlans: [1], units: ["multi-user.target", "postgresql.service"], ports: { tcp: [5432], udp: [] } },
    },
  };
  const ok = ['await db.waitForUnit("postgresql.service");', "await db.waitForOpenPort(5432);", 'await db.succeed("true");', 'await server.screenshot("s");'];
  assert.equal((await checkScript(manifest, ok)).printed, "");
  const r = await checkScript(manifest, ['await db.succeed("true");', 'await db.screenshot("shot");', 'await db.sendKey("ret");']);
  assertFinding(r.printed, 2, 10, "error", "TS2339", /Property 'screenshot' does not exist on type 'DbMachine'/);
  assertFinding(r.printed, 3, 10, "error", "TS2339", /Property 'sendKey' does not exist/);
  assert.equal(r.errors, 2);
});

test("the driver's internals are not in the types a script sees (stripInternal): cleanup, failureHook, rawShellExchange", async () => {
  const r = await checkScript(ONE_NODE, [
    "await driver.cleanup();",
    "driver.failureHook = undefined;",
    'await machine.rawShellExchange("echo\\n", /\\n/);',
    'await machine.succeed("true");',
  ]);
  assertFinding(r.printed, 1, 14, "error", "TS2339", /Property 'cleanup' does not exist/);
  assertFinding(r.printed, 2, 8, "error", "TS2339", /Property 'failureHook' does not exist/);
  assertFinding(r.printed, 3, 15, "error", "TS2339", /Property 'rawShellExchange' does not exist/);
  assert.equal(r.errors, 3, r.printed);
});
