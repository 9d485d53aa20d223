// runtime/errors.ts: messages people can act on, stable codes for programs.
import assert from "node:assert/strict";
import { test } from "node:test";
import { inspect } from "node:util";
import {
  CommandFailedError,
  ConfigError,
  MachineCrashedError,
  MachineError,
  NixosTestError,
  OutputLostError,
  PollingConditionFailedError,
  TestAbortedError,
  TimeoutError,
  UnitFailedError,
  UsageError,
  tail,
} from "../../runtime/errors.js";

const lines = (n: number, prefix = "line"): string => Array.from({ length: n }, (_, i) => `${prefix} ${i + 1}`).join("\n");

test("CommandFailedError names the machine, the command, the exit code and shows the output", () => {
  const e = new CommandFailedError("server", "systemctl start nginx", 3, "first\nsecond\n");
  assert.equal(e.machine, "server");
  assert.equal(e.command, "systemctl start nginx");
  assert.equal(e.exitCode, 3);
  assert.equal(e.output, "first\nsecond\n");
  assert.equal(e.unexpectedSuccess, false);
  assert.equal(e.message, "server: command `systemctl start nginx` failed (exit code 3)\n  output:\n    first\n    second");
});

test("CommandFailedError: hints for 124 (timeout), 127 (not found), 126 and signals", () => {
  const hint = (code: number) => /\(exit code \d+(.*)\)\n/.exec(new CommandFailedError("m", "c", code, "").message)?.[1];
  assert.equal(hint(124), ": the guest-side timeout killed it");
  assert.equal(hint(127), ": command not found in the guest");
  assert.equal(hint(126), ": not executable");
  assert.equal(hint(137), ": killed by signal 9");
  assert.equal(hint(143), ": killed by signal 15");
  assert.equal(hint(129), ": killed by signal 1");
  for (const plain of [1, 2, 125, 128, 255]) assert.equal(hint(plain), "", `exit code ${plain}`);
});

test("CommandFailedError shows at most 20 lines of the output's tail, saying how many were left out", () => {
  const e = new CommandFailedError("m", "seq 100", 1, `${lines(100)}\n`);
  const shown = e.message.split("\n  output:\n")[1]!.split("\n");
  assert.equal(shown.length, 21);
  assert.equal(shown[0], "    ... (80 earlier lines omitted)");
  assert.equal(shown[1], "    line 81");
  assert.equal(shown[20], "    line 100");
  assert.equal(e.output, `${lines(100)}\n`, "the whole output stays available");
  // Exactly 20 lines: all shown, nothing omitted.
  const twenty = new CommandFailedError("m", "c", 1, lines(20));
  assert.doesNotMatch(twenty.message, /omitted/);
  assert.equal(twenty.message.split("\n  output:\n")[1]!.split("\n").length, 20);
});

test("CommandFailedError: no output says so; unexpected success is its own message", () => {
  assert.match(new CommandFailedError("m", "false", 1, "").message, /output:\n {4}\(no output\)$/);
  const e = new CommandFailedError("client", "curl http://server", 0, "ok", true);
  assert.equal(e.unexpectedSuccess, true);
  assert.match(e.message, /^client: command `curl http:\/\/server` unexpectedly succeeded\n/);
  assert.doesNotMatch(e.message, /exit code/);
});

test("tail() keeps the last lines and ignores one trailing newline", () => {
  assert.equal(tail("a\nb\n"), "a\nb");
  assert.equal(tail(lines(5), 2), "... (3 earlier lines omitted)\nline 4\nline 5");
  assert.equal(tail(""), "");
});

test("MachineCrashedError shows how QEMU ended and the serial tail", () => {
  const serial = "[  1.0] Kernel panic - not syncing\n[  1.1] end Kernel panic";
  const killed = new MachineCrashedError("server", "running `reboot`", null, "SIGKILL", serial);
  assert.equal(
    killed.message,
    `server: QEMU was killed by SIGKILL while running \`reboot\`\n  last serial output:\n    [  1.0] Kernel panic - not syncing\n    [  1.1] end Kernel panic`,
  );
  assert.equal(killed.serialTail, serial);
  assert.equal(killed.signal, "SIGKILL");
  assert.equal(killed.exitCode, null);
  const exited = new MachineCrashedError("client", "waiting for the shell", 1, null, "");
  assert.equal(exited.message, "client: QEMU exited with status 1 while waiting for the shell\n  last serial output:\n    (no output)");
});

test("TimeoutError: machine prefix only when known, detail on its own line", () => {
  assert.equal(new TimeoutError("waiting for unit x", 60, "m").message, "m: waiting for unit x timed out after 60 s");
  assert.equal(new TimeoutError("retry", 5).message, "retry timed out after 5 s");
  assert.equal(new TimeoutError("w", 1, "m", "last lines: ...").message, "m: w timed out after 1 s\nlast lines: ...");
});

test("OutputLostError and UnitFailedError carry their data and say what happened", () => {
  const lost = new OutputLostError("m", "cat big", 100, 60, "bytes were lost");
  assert.deepEqual([lost.command, lost.expected, lost.received], ["cat big", 100, 60]);
  assert.match(lost.message, /^m: the output of `cat big` was damaged .*\(bytes were lost: 60 of 100 characters of the answer arrived\)/);
  const unit = new UnitFailedError("m", "nginx.service", "failed", "status text", lines(30, "journal"));
  assert.equal(unit.unit, "nginx.service");
  assert.match(
    unit.message,
    /^m: unit nginx.service failed\n  systemctl status:\n {4}status text\n  last journal lines:\n {4}\.\.\. \(10 earlier lines omitted\)\n {4}journal 11\n/,
  );
});

test("every class: a stable code, name equal to the class name, the right base classes", () => {
  const cases: Array<[NixosTestError, string, string]> = [
    [new NixosTestError("NTT_X", "m"), "NixosTestError", "NTT_X"],
    [new ConfigError("bad", "vms"), "ConfigError", "NTT_CONFIG"],
    [new MachineError("m", "broken"), "MachineError", "NTT_MACHINE"],
    [new CommandFailedError("m", "c", 1, ""), "CommandFailedError", "NTT_COMMAND_FAILED"],
    [new UnitFailedError("m", "u", "failed", "", ""), "UnitFailedError", "NTT_UNIT_FAILED"],
    [new TimeoutError("w", 1), "TimeoutError", "NTT_TIMEOUT"],
    [new MachineCrashedError("m", "d", 1, null, ""), "MachineCrashedError", "NTT_MACHINE_CRASHED"],
    [new OutputLostError("m", "c", 1, 0, "why"), "OutputLostError", "NTT_OUTPUT_LOST"],
    [new TestAbortedError("SIGINT"), "TestAbortedError", "NTT_ABORTED"],
    [new PollingConditionFailedError("d"), "PollingConditionFailedError", "NTT_POLLING_CONDITION"],
    [new UsageError("no"), "UsageError", "NTT_USAGE"],
  ];
  const codes = new Set<string>();
  for (const [error, name, code] of cases) {
    assert.equal(error.name, name);
    assert.equal(error.constructor.name, name);
    assert.equal(error.code, code, name);
    assert.ok(error instanceof NixosTestError && error instanceof Error, name);
    assert.ok(String(error).startsWith(`${name}: `), String(error));
    assert.ok(error.stack?.startsWith(`${name}: `), `${name}: stack begins with ${error.stack?.split("\n")[0]}`);
    assert.equal(inspect(error), `${name}: ${error.message}`);
    codes.add(code);
  }
  assert.equal(codes.size, cases.length, "codes are distinct");
  for (const e of [
    new CommandFailedError("m", "c", 1, ""),
    new MachineCrashedError("m", "d", 1, null, ""),
    new OutputLostError("m", "c", 1, 0, "w"),
    new UnitFailedError("m", "u", "w", "", ""),
  ]) {
    assert.ok(e instanceof MachineError, e.name);
    assert.equal(e.machine, "m");
  }
});

test("errors keep their cause", () => {
  const cause = new Error("inner");
  assert.equal(new TimeoutError("w", 1, undefined, undefined, { cause }).cause, cause);
  assert.equal(new TestAbortedError("x", { cause }).cause, cause);
  assert.equal(new PollingConditionFailedError("d", { cause }).cause, cause);
});
