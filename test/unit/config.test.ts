// lib/config.ts: nixpkgs' driver configuration (--config), validated with
// messages that name the field path and the value that was found.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ConfigError } from "../../lib/errors.js";
import { DEFAULT_GLOBAL_TIMEOUT, parseDriverConfiguration, readDriverConfiguration } from "../../lib/config.js";

const SOURCE = "--config /etc/driver.json";

/** The shape nixpkgs writes. */
function valid(): Record<string, unknown> {
  return {
    vms: { machine1: { name: "machine1", start_script: "/nix/store/x/bin/run-machine1-vm" } },
    vlans: [1, 2],
    global_timeout: 3600,
    test_script: "/x",
  };
}

function withVm(vm: Record<string, unknown>): Record<string, unknown> {
  return { ...valid(), vms: { machine1: vm } };
}

/** Asserts a ConfigError naming `field` in `.field` and in the message, and that the message matches every pattern. */
function rejects(json: unknown, field: string | undefined, ...patterns: RegExp[]): ConfigError {
  let caught: unknown;
  assert.throws(
    () => parseDriverConfiguration(json, SOURCE),
    (error: unknown) => {
      caught = error;
      return true;
    },
  );
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.field, field);
  assert.equal(caught.code, "NTT_CONFIG");
  assert.ok(caught.message.startsWith(`${SOURCE}: `), `message does not name the source: ${caught.message}`);
  if (field !== undefined) assert.ok(caught.message.includes(field), `message does not name ${field}: ${caught.message}`);
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}

test("a valid nixpkgs-shaped configuration becomes the runtime's own terms", () => {
  assert.deepEqual(parseDriverConfiguration(valid(), SOURCE), {
    vms: [{ name: "machine1", startScript: "/nix/store/x/bin/run-machine1-vm" }],
    containers: [],
    vlans: [1, 2],
    globalTimeout: 3600,
    testScript: "/x",
    warnings: [],
  });
});

test("optional fields: vlans default to none, global_timeout to 3600, name to the key; vlans are deduplicated and sorted", () => {
  const c = parseDriverConfiguration(
    {
      vms: { a: { start_script: "/s/run-a-vm" }, b: { name: "bee", start_script: "/s/run-b-vm" } },
      test_script: "/t",
    },
    SOURCE,
  );
  assert.equal(DEFAULT_GLOBAL_TIMEOUT, 3600);
  assert.deepEqual(c, {
    containers: [],
    vms: [
      { name: "a", startScript: "/s/run-a-vm" },
      { name: "bee", startScript: "/s/run-b-vm" },
    ],
    vlans: [],
    globalTimeout: 3600,
    testScript: "/t",
    warnings: [],
  });
  assert.deepEqual(parseDriverConfiguration({ ...valid(), vlans: [3, 1, 3, 2] }, SOURCE).vlans, [1, 2, 3]);
  assert.equal(parseDriverConfiguration({ ...valid(), global_timeout: 0.5 }, SOURCE).globalTimeout, 0.5);
});

test("empty containers and enable_ssh_backdoor false are accepted (nixpkgs writes them)", () => {
  const c = parseDriverConfiguration({ ...valid(), containers: {}, enable_ssh_backdoor: false }, SOURCE);
  assert.deepEqual(c.vms, [{ name: "machine1", startScript: "/nix/store/x/bin/run-machine1-vm" }]);
});

test("the top level must be an object", () => {
  rejects([], "(top level)", /must be an object, got \[\]/);
  rejects(null, "(top level)", /must be an object, got null/);
});

test("vms of the wrong type or missing: names vms and the value", () => {
  rejects({ ...valid(), vms: ["machine1"] }, "vms", /vms must be an object, got \["machine1"\]/);
  rejects({ ...valid(), vms: "machine1" }, "vms", /vms must be an object, got "machine1"/);
  const { vms: _, ...noVms } = valid();
  rejects(noVms, "vms", /vms must be an object, got nothing \(the field is missing\)/);
});

test("a VM that is not an object", () => {
  rejects({ ...valid(), vms: { machine1: "/nix/store/x/bin/run-machine1-vm" } }, "vms.machine1", /"\/nix\/store\/x\/bin\/run-machine1-vm"/);
});

test("start_script missing or not a string: names vms.<key>.start_script and the value", () => {
  rejects(withVm({ name: "machine1" }), "vms.machine1.start_script", /must be a non-empty string, got nothing \(the field is missing\)/);
  rejects(withVm({ name: "machine1", start_script: 42 }), "vms.machine1.start_script", /must be a non-empty string, got 42/);
  rejects(withVm({ name: "machine1", start_script: "" }), "vms.machine1.start_script", /got ""/);
});

test("a VM's name must be a non-empty string", () => {
  rejects(withVm({ name: 7, start_script: "/s" }), "vms.machine1.name", /got 7/);
});

test("vlans: 0, a string, a fraction and a non-array are rejected with the element's path", () => {
  rejects({ ...valid(), vlans: [1, 0] }, "vlans[1]", /vlans\[1\] must be an integer ≥ 1, got 0/);
  rejects({ ...valid(), vlans: ["1"] }, "vlans[0]", /vlans\[0\] must be an integer ≥ 1, got "1"/);
  rejects({ ...valid(), vlans: [1.5] }, "vlans[0]", /got 1\.5/);
  rejects({ ...valid(), vlans: 1 }, "vlans", /vlans must be an array, got 1/);
});

test("global_timeout: negative, zero and non-numbers are rejected with the value", () => {
  rejects({ ...valid(), global_timeout: -5 }, "global_timeout", /got -5/);
  rejects({ ...valid(), global_timeout: 0 }, "global_timeout", /must be a number of seconds > 0 or a duration .*, got 0/);
  rejects({ ...valid(), global_timeout: "3600" }, "global_timeout", /got "3600"/);
  rejects({ ...valid(), global_timeout: "PT" }, "global_timeout", /got "PT"/);
  rejects({ ...valid(), global_timeout: "PT0S" }, "global_timeout", /got "PT0S"/);
  rejects({ ...valid(), global_timeout: true }, "global_timeout", /got true/);
});

test("global_timeout as a duration string, as nixpkgs' schema (pydantic's timedelta) takes it", () => {
  const seconds = (t: string): number => parseDriverConfiguration({ ...valid(), global_timeout: t }, SOURCE).globalTimeout;
  assert.equal(seconds("PT1H"), 3600);
  assert.equal(seconds("PT1H30M"), 5400);
  assert.equal(seconds("P1DT2H"), 93600);
  assert.equal(seconds("PT1.5S"), 1.5);
  assert.equal(seconds("P1W"), 604800);
  assert.equal(seconds("pt90m"), 5400);
  assert.equal(seconds("01:30:00"), 5400);
  assert.equal(seconds("1 day, 00:00:10"), 86410);
});

test("the message for a negative global_timeout states the real bound (> 0), not one that 0 would satisfy", () => {
  // 0 is rejected too, so "must be a number ≥ 0" would send the user from one error to the next.
  rejects({ ...valid(), global_timeout: -5 }, "global_timeout", /must be a number of seconds > 0 .*, got -5/);
});

test("test_script is required", () => {
  const { test_script: _, ...noScript } = valid();
  rejects(noScript, "test_script", /must be a non-empty string, got nothing/);
});

test("an unknown top-level key is warned about (named, with the known ones), not refused, as nixpkgs' driver ignores it", () => {
  const config = parseDriverConfiguration({ ...valid(), vlan: [1], display_viewers: {} }, SOURCE);
  assert.equal(config.warnings.length, 2, config.warnings.join("\n"));
  const [first] = config.warnings;
  assert.match(first as string, /unknown field vlan ignored \(known fields: vms, containers, vlans, global_timeout, enable_ssh_backdoor, test_script\)/);
  assert.match(config.warnings[1] as string, /unknown field display_viewers ignored/);
  assert.deepEqual(parseDriverConfiguration(valid(), SOURCE).warnings, []);
});

test("an unknown key inside a VM is warned about with its path", () => {
  const config = parseDriverConfiguration(withVm({ name: "machine1", start_script: "/s", startScript: "/s" }), SOURCE);
  assert.match(config.warnings.join("\n"), /unknown field vms\.machine1\.startScript ignored \(known fields: name, start_script\)/);
});

test("two VMs with the same name (via name): names the name and both entries", () => {
  const json = {
    ...valid(),
    vms: {
      first: { name: "twin", start_script: "/s/run-twin-vm" },
      second: { name: "twin", start_script: "/s/run-other-vm" },
    },
  };
  let caught: unknown;
  try {
    parseDriverConfiguration(json, SOURCE);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.ok(caught.field?.startsWith("vms"), `field: ${caught.field}`);
  assert.match(caught.message, /"twin"/);
  // Which entries collide: with twenty VMs the name alone does not say where to look.
  assert.match(caught.message, /vms\.first/);
  assert.match(caught.message, /vms\.second/);
});

test("a key equal to another VM's explicit name also collides", () => {
  const json = {
    ...valid(),
    vms: { a: { start_script: "/s/run-a-vm" }, b: { name: "a", start_script: "/s/run-b-vm" } },
  };
  assert.throws(
    () => parseDriverConfiguration(json, SOURCE),
    (e: unknown) => e instanceof ConfigError && /"a"/.test(e.message),
  );
});

test("containers are parsed like vms; names are unique across both", () => {
  const c = parseDriverConfiguration(
    { ...valid(), containers: { c1: { name: "db", start_script: "/s/run-db-nspawn" }, c2: { start_script: "/s/run-c2-nspawn" } } },
    SOURCE,
  );
  assert.deepEqual(c.containers, [
    { name: "db", startScript: "/s/run-db-nspawn" },
    { name: "c2", startScript: "/s/run-c2-nspawn" },
  ]);
  rejects({ ...valid(), containers: { x: { name: "machine1", start_script: "/s/run-x-nspawn" } } }, `containers.x.name`, /unique across vms and containers/);
  const extra = parseDriverConfiguration({ ...valid(), containers: { c1: { name: "c1", start_script: "/s/r", extra: 1 } } }, SOURCE);
  assert.match(extra.warnings.join("\n"), /unknown field containers\.c1\.extra ignored/);
  rejects({ ...valid(), containers: [] }, "containers", /must be an object, got \[\]/);
});

test("enable_ssh_backdoor true: a clear 'not supported' error; a non-boolean is named", () => {
  rejects({ ...valid(), enable_ssh_backdoor: true }, "enable_ssh_backdoor", /SSH backdoor is not supported/);
  rejects({ ...valid(), enable_ssh_backdoor: "yes" }, "enable_ssh_backdoor", /must be true or false, got "yes"/);
});

test("long values are shortened in messages", () => {
  const e = rejects({ ...valid(), vms: "x".repeat(500) }, "vms");
  assert.ok(e.message.length < 200, e.message);
  assert.match(e.message, /\.\.\.$/);
});

const dir = await mkdtemp(join(tmpdir(), "ntt-config-test-"));
after(() => rm(dir, { recursive: true, force: true }));

test("readDriverConfiguration reads and validates a file", async () => {
  const path = join(dir, "ok.json");
  await writeFile(path, JSON.stringify(valid()));
  assert.deepEqual(await readDriverConfiguration(path), {
    vms: [{ name: "machine1", startScript: "/nix/store/x/bin/run-machine1-vm" }],
    containers: [],
    vlans: [1, 2],
    globalTimeout: 3600,
    testScript: "/x",
    warnings: [],
  });
});

test("readDriverConfiguration: validation errors name --config <path> and the field", async () => {
  const path = join(dir, "bad-vlan.json");
  await writeFile(path, JSON.stringify({ ...valid(), vlans: [0] }));
  await assert.rejects(readDriverConfiguration(path), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.field, "vlans[0]");
    assert.equal(e.message, `--config ${path}: vlans[0] must be an integer ≥ 1, got 0`);
    return true;
  });
});

test("readDriverConfiguration: a missing file says --config <path> and cannot read", async () => {
  const path = join(dir, "does-not-exist.json");
  await assert.rejects(readDriverConfiguration(path), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.ok(e.message.startsWith(`--config ${path}: cannot read the file`), e.message);
    assert.match(e.message, /ENOENT/);
    assert.ok(e.cause instanceof Error);
    return true;
  });
});

test("readDriverConfiguration: invalid JSON says --config <path> and not valid JSON", async () => {
  const path = join(dir, "broken.json");
  await writeFile(path, '{"vms": {');
  await assert.rejects(readDriverConfiguration(path), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.ok(e.message.startsWith(`--config ${path}: not valid JSON (`), e.message);
    assert.ok(e.cause instanceof SyntaxError);
    return true;
  });
});
