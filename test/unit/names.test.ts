// lib/names.ts: machine names as nixpkgs derives them from start scripts and sanitises them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { machineNameFromStartScript, sanitiseName, scriptBinding } from "../../lib/names.js";

test("machineNameFromStartScript: run-<name>-vm gives <name>", () => {
  assert.equal(machineNameFromStartScript("/nix/store/x/bin/run-machine1-vm"), "machine1");
  assert.equal(machineNameFromStartScript("run-server-vm"), "server");
  // The name itself may contain dashes and even "-vm".
  assert.equal(machineNameFromStartScript("/nix/store/x/bin/run-my-vm-vm"), "my-vm");
  assert.equal(machineNameFromStartScript("/nix/store/x/bin/run-web-1-vm"), "web-1");
});

test("machineNameFromStartScript: only the program's basename counts, arguments and blanks are ignored", () => {
  assert.equal(machineNameFromStartScript("  /nix/store/x/bin/run-client-vm -m 2048  "), "client");
  // A directory that looks like a start script does not count.
  assert.equal(machineNameFromStartScript("/nix/store/abc-run-foo-vm/bin/run-bar-vm"), "bar");
});

test("machineNameFromStartScript: anything else is 'machine', as in the Python driver", () => {
  assert.equal(machineNameFromStartScript("/nix/store/x/bin/qemu-kvm"), "machine");
  assert.equal(machineNameFromStartScript("/nix/store/x/bin/run--vm"), "machine");
  assert.equal(machineNameFromStartScript("/nix/store/x/bin/run-a-vm.sh"), "machine");
  assert.equal(machineNameFromStartScript(""), "machine");
});

test("sanitiseName follows pythonize_name: invalid characters become _, a leading non-letter too", () => {
  assert.equal(sanitiseName("machine-a"), "machine_a");
  assert.equal(sanitiseName("1st"), "_st");
  assert.equal(sanitiseName("a.b-c d"), "a_b_c_d");
  assert.equal(sanitiseName("9"), "_");
  assert.equal(sanitiseName("-x-"), "_x_");
});

test("sanitiseName keeps valid identifiers as they are (digits allowed after the first character)", () => {
  for (const name of ["machine", "machine1", "_private", "Server_2", "x"]) assert.equal(sanitiseName(name), name);
});

test("sanitiseName: every character outside [A-Za-z0-9_] is replaced, one for one", () => {
  const out = sanitiseName("né/ü:1");
  assert.equal(out, "n____1");
  assert.match(sanitiseName("a\u{1F600}b"), /^a_+b$/);
});

test("scriptBinding: nixpkgs' sanitised name, with _ appended while it is a reserved word, a global or a script symbol", () => {
  assert.equal(scriptBinding("web-1"), "web_1");
  assert.equal(scriptBinding("class"), "class_");
  assert.equal(scriptBinding("import"), "import_");
  assert.equal(scriptBinding("subtest"), "subtest_");
  assert.equal(scriptBinding("vlan1"), "vlan1_");
  assert.equal(scriptBinding("vlanx"), "vlanx");
  assert.equal(scriptBinding("server"), "server");
});
