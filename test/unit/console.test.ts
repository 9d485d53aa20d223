// runtime/machine/console.ts: the serial console as lines, and waitFor with
// nixpkgs' queue semantics (lines not consumed by an earlier wait count).
import assert from "node:assert/strict";
import { test } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import { ConsoleLog } from "../../runtime/machine/console.js";
import { TestAbortedError } from "../../runtime/errors.js";

/** Whether `promise` has settled after the pending callbacks ran (without waiting for it). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await tick();
  await tick();
  return done;
}

const never = new AbortController().signal;

test("waitFor resolves when a line that arrives later matches, with the matched text", async () => {
  const log = new ConsoleLog();
  const waiting = log.waitFor(/login: \w+/, never);
  log.push("booting");
  assert.equal(await settled(waiting), false);
  log.push("welcome, login: root");
  assert.equal(await waiting, "login: root");
});

test("waitFor matches across lines", async () => {
  const log = new ConsoleLog();
  const waiting = log.waitFor(/first\nsecond/, never);
  log.push("first");
  assert.equal(await settled(waiting), false);
  log.push("second");
  assert.equal(await waiting, "first\nsecond");
});

test("lines pushed before the call that no wait consumed are considered", async () => {
  const log = new ConsoleLog();
  log.push("Reached target Multi-User System");
  log.push("other");
  assert.equal(await log.waitFor(/Multi-User/, never), "Multi-User");
});

test("a second wait does not re-match the lines the first one consumed", async () => {
  const log = new ConsoleLog();
  log.push("ready 1");
  assert.equal(await log.waitFor(/ready \d/, never), "ready 1");
  const second = log.waitFor(/ready \d/, never);
  assert.equal(await settled(second), false);
  log.push("noise");
  assert.equal(await settled(second), false);
  log.push("ready 2");
  assert.equal(await second, "ready 2");
});

test("lines after the matched one stay for the next wait", async () => {
  const log = new ConsoleLog();
  for (const line of ["a", "match here", "b", "c"]) log.push(line);
  assert.equal(await log.waitFor(/match/, never), "match");
  // "a" and "match here" are consumed; "b" is not.
  assert.equal(await log.waitFor(/^b\nc/, never), "b\nc");
  const third = log.waitFor(/a|b|c|match/, never);
  assert.equal(await settled(third), false);
  log.push("c again");
  assert.equal(await third, "c");
});

test("a multi-line match consumes every line it spans", async () => {
  const log = new ConsoleLog();
  for (const line of ["x", "y", "z"]) log.push(line);
  assert.equal(await log.waitFor(/x\ny/, never), "x\ny");
  assert.equal(await log.waitFor(/^z$/m, never), "z");
  const again = log.waitFor(/y/, never);
  assert.equal(await settled(again), false);
  log.push("y2");
  assert.equal(await again, "y");
});

test("abort rejects with the signal's reason and consumes nothing", async () => {
  const log = new ConsoleLog();
  log.push("unrelated");
  const controller = new AbortController();
  const reason = new Error("timed out");
  const waiting = log.waitFor(/never/, controller.signal);
  controller.abort(reason);
  await assert.rejects(waiting, (e: unknown) => e === reason);
  // The aborted wait no longer listens, and a later wait still sees the old line.
  log.push("never mind");
  assert.equal(await log.waitFor(/unrelated/, new AbortController().signal), "unrelated");
});

test("abort with a non-Error reason rejects with a TestAbortedError; an aborted signal with no match rejects at once", async () => {
  const log = new ConsoleLog();
  const controller = new AbortController();
  const waiting = log.waitFor(/x/, controller.signal);
  controller.abort("stop");
  await assert.rejects(waiting, (e: unknown) => e instanceof TestAbortedError && e.message === "stop");
  const reason = new Error("already");
  await assert.rejects(log.waitFor(/x/, AbortSignal.abort(reason)), (e: unknown) => e === reason);
});

test("a match already in the log wins over an aborted signal", async () => {
  const log = new ConsoleLog();
  log.push("here");
  assert.equal(await log.waitFor(/here/, AbortSignal.abort(new Error("late"))), "here");
});

test("tail() gives the last lines (20 by default), text() all of them; reset() empties the log", async () => {
  const log = new ConsoleLog();
  for (let i = 1; i <= 30; i++) log.push(`line ${i}`);
  assert.equal(log.tail(3), "line 28\nline 29\nline 30");
  const tail = log.tail().split("\n");
  assert.equal(tail.length, 20);
  assert.equal(tail[0], "line 11");
  assert.equal(tail[19], "line 30");
  assert.equal(log.text().split("\n").length, 30);
  assert.equal(new ConsoleLog().tail(), "");
  log.reset();
  assert.equal(log.text(), "");
  // After a reset the old lines are gone for waits too.
  const waiting = log.waitFor(/line 5/, never);
  assert.equal(await settled(waiting), false);
  log.push("line 5 again");
  assert.equal(await waiting, "line 5");
});

test("two waits at once: each resolves on its own line", async () => {
  const log = new ConsoleLog();
  const a = log.waitFor(/alpha/, never);
  const b = log.waitFor(/beta/, never);
  log.push("beta");
  assert.equal(await b, "beta");
  assert.equal(await settled(a), false);
  log.push("alpha");
  assert.equal(await a, "alpha");
});

test("bounded memory: a long console is complete in text() (from its file), waits still see new lines", async () => {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "ntt-console-"));
  try {
    const log = new ConsoleLog();
    log.reset(join(dir, "console.txt"));
    const waiting = log.waitFor(/^the end 1999999$/m, never);
    const line = "x".repeat(60);
    for (let i = 0; i < 200_000; i++) log.push(`${line} ${i}`);
    assert.equal(await settled(waiting), false);
    log.push("the end 1999999");
    assert.equal(await waiting, "the end 1999999");
    const text = log.text().split("\n");
    assert.equal(text.length, 200_001);
    assert.equal(text[0], `${line} 0`);
    assert.equal(text[199_999], `${line} 199999`);
    // Memory keeps a tail only, and tail() still works.
    assert.equal(log.tail(1), "the end 1999999");
    log.reset();
    assert.equal(log.text(), "");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a multi-line match inside one batch of lines consumes only up to its last line", async () => {
  const log = new ConsoleLog();
  const waiting = log.waitFor(/one\ntwo/, never);
  for (const l of ["zero", "one", "two", "three", "one", "two"]) log.push(l);
  assert.equal(await waiting, "one\ntwo");
  // "three" and the second "one\ntwo" are left for the next wait.
  assert.equal(await log.waitFor(/three\none\ntwo/, never), "three\none\ntwo");
});
