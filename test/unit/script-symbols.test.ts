// lib/script-symbols.ts is the one list of the script's symbols: the runtime
// exports and binds each, and the README's porting table covers it and every
// method and symbol of nixpkgs' Python driver.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { SCRIPT_API_NAMES, SCRIPT_SYMBOLS_LIST } from "../../lib/script-symbols.js";
import * as runtime from "../../runtime/index.js";
import { Driver } from "../../runtime/driver/driver.js";
import { scriptMachines } from "../../runtime/driver/driver.js";
import { t } from "../../runtime/driver/assertions.js";
import { Logger } from "../../runtime/log/logger.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

// nixpkgs' Python driver: Machine methods and attributes (BaseMachine,
// QemuMachine, NspawnMachine) and test_symbols(), as of the reference in
// /work/shared/reference/nixpkgs-test-framework.md.
const UPSTREAM_METHODS = [
  "log",
  "log_serial",
  "nested",
  "is_up",
  "start",
  "wait_for_shutdown",
  "shutdown",
  "systemctl",
  "wait_for_unit",
  "wait_for_job",
  "get_unit_info",
  "get_unit_property",
  "require_unit_state",
  "succeed",
  "fail",
  "wait_until_succeeds",
  "wait_until_fails",
  "sleep",
  "wait_for_file",
  "get_window_names",
  "wait_for_window",
  "send_key",
  "send_chars",
  "screenshot",
  "get_screen_text_variants",
  "get_screen_text",
  "wait_for_text",
  "wait_for_open_port",
  "wait_for_open_unix_socket",
  "wait_for_closed_port",
  "start_job",
  "stop_job",
  "execute",
  "run_callbacks",
  "cleanup_statedir",
  "copy_from_machine",
  "copy_from_vm",
  "copy_from_host",
  "copy_from_host_via_shell",
  "connect",
  "crash",
  "reboot",
  "release",
  "send_monitor_command",
  "wait_for_monitor_prompt",
  "send_console",
  "console_interact",
  "shell_interact",
  "get_tty_text",
  "wait_until_tty_matches",
  "dump_tty_contents",
  "wait_for_console_text",
  "get_console_log",
  "wait_for_qmp_event",
  "wait_for_x",
  "forward_port",
  "block",
  "unblock",
  "switch_root",
  "ssh_backdoor_command",
  "dump_efi_vars",
  "read_efi_vars",
  "create_efi_vars",
  "write_efi_vars",
  "name",
  "state_dir",
  "shared_dir",
  "qmp_client",
  "booted",
  "connected",
  "pid",
];
const UPSTREAM_SYMBOLS = [
  "start_all",
  "join_all",
  "test_script",
  "run_tests",
  "machines",
  "machines_qemu",
  "machines_nspawn",
  "vlans",
  "driver",
  "log",
  "os",
  "create_machine",
  "subtest",
  "retry",
  "serial_stdout_off",
  "serial_stdout_on",
  "polling_condition",
  "t",
  "BaseMachine",
  "QemuMachine",
  "NspawnMachine",
  "Machine",
];

function portingTable(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("### Porting from Python"));
  const table = section.slice(0, section.indexOf("\n\n", section.indexOf("| Python")));
  // The Python column of each row.
  return table
    .split("\n")
    .filter((l) => l.startsWith("| "))
    .map((l) => l.split(" | ")[0] as string);
}

test("the README's porting table has a row for every method and symbol of nixpkgs' driver", () => {
  const python = portingTable().join("\n");
  const missing = [...UPSTREAM_METHODS, ...UPSTREAM_SYMBOLS].filter((n) => !new RegExp(`(^|[^\\w])${n}([^\\w]|$)`, "m").test(python));
  assert.deepEqual(missing, [], "add a row (its TypeScript form, or 'not available, because …') to README.md's porting table");
});

test("every listed symbol with a Python name is in the porting table", () => {
  const python = portingTable().join("\n");
  for (const s of SCRIPT_SYMBOLS_LIST) {
    if (s.python.startsWith("(")) continue;
    assert.match(python, new RegExp(`(^|[^\\w])${s.python}([^\\w]|$)`, "m"), s.name);
  }
});

test("the runtime exports every function lib/script-symbols.ts lists, and binds every listed script symbol", () => {
  for (const name of SCRIPT_API_NAMES) assert.ok(name in runtime, `"nixos-test-ts" exports ${name}`);
  const stateRoot = mkdtempSync(join(tmpdir(), "ntt-symbols-"));
  try {
    const driver = new Driver({ logger: new Logger([]), outDir: stateRoot, stateRoot, globalTimeout: 10, vms: [], vlans: [] });
    const symbols = Object.keys(driver.testSymbols());
    for (const s of SCRIPT_SYMBOLS_LIST.filter((x) => x.kind !== "repl" && x.name !== "values" && x.name !== "runtimeUnit"))
      assert.ok(symbols.includes(s.name), s.name);
  } finally {
    rmSync(stateRoot, { recursive: true, force: true });
  }
});

test("machines is an array, with each machine once, and by name", () => {
  const a = { name: "a" };
  const b = { name: "length" };
  const machines = scriptMachines({ a, length: b });
  assert.ok(Array.isArray(machines));
  assert.deepEqual([...machines], [a, b]);
  assert.deepEqual(Object.values(machines), [a, b]);
  assert.equal(machines.a, a);
  assert.equal(machines.length, 2, "a name an array has stays the array's");
});

test("t: unittest's assertions with their messages", async () => {
  t.assertEqual([1, { x: "y" }], [1, { x: "y" }]);
  assert.throws(() => t.assertEqual(1, 2, "why"), { name: "AssertionError", message: "1 != 2 : why" });
  t.assertIn("ell", "hello");
  t.assertIn(2, [1, 2]);
  assert.throws(() => t.assertIn(3, [1, 2]), /3 not found in \[ 1, 2 \]/);
  t.assertRegex("version 1.2", /\d+\.\d+/);
  assert.throws(() => t.assertNotRegex("abc", "b"), /Regex matched/);
  t.assertCountEqual([1, 2, 2], [2, 1, 2]);
  assert.throws(() => t.assertCountEqual([1], [1, 1]), /Element counts were not equal/);
  t.assertIsNone(null);
  t.assertGreater(3, 2);
  t.assertAlmostEqual(0.1 + 0.2, 0.3);
  const e = await t.assertRaises(RangeError, () => {
    throw new RangeError("x");
  });
  assert.equal(e.message, "x");
  await assert.rejects(
    t.assertRaises(RangeError, () => undefined),
    /RangeError not raised/,
  );
  assert.throws(() => t.fail("stop"), { message: "stop" });
});
