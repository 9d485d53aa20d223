// runtime/driver/polling-condition.ts: nixpkgs' polling_condition — checked before
// commands at most once per interval while active; a failure fails the test.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { PollingConditionFailedError } from "../../runtime/errors.js";
import { PollingCondition } from "../../runtime/driver/polling-condition.js";

function counter(result: () => unknown = () => true) {
  const state = { calls: 0 };
  const fn = () => {
    state.calls++;
    return result();
  };
  return { state, fn };
}

test("maybeCheck checks at most once per interval; force checks regardless", async () => {
  const { state, fn } = counter();
  const registry = new Set<PollingCondition>();
  const c = new PollingCondition(fn, registry, { interval: 0.2, description: "ok" });
  using _active = c.enter();
  for (let i = 0; i < 5; i++) await c.maybeCheck();
  const early = state.calls;
  assert.ok(early <= 1, `${early} checks within one interval`);
  await delay(230);
  for (let i = 0; i < 5; i++) await c.maybeCheck();
  assert.equal(state.calls, early + 1, "one check once the interval passed, not one per call");
  await c.maybeCheck(true);
  assert.equal(state.calls, early + 2);
  await c.maybeCheck();
  assert.equal(state.calls, early + 2, "a forced check counts as the interval's check");
});

test("the first command after a condition becomes active checks it (nixpkgs: last_called starts at -inf)", async () => {
  // nixpkgs' PollingCondition.check() runs when `last_called + interval < now`,
  // and last_called starts at -inf: a condition that is already false fails
  // the very first command of the `with` block, not one interval later.
  const { state, fn } = counter(() => false);
  const c = new PollingCondition(fn, new Set(), { interval: 2, description: "already broken" });
  await c.during(async () => {
    await assert.rejects(c.maybeCheck(), PollingConditionFailedError);
  });
  assert.equal(state.calls, 1);
});

test("a false condition throws PollingConditionFailedError with the description", async () => {
  const c = new PollingCondition(() => false, new Set(), { interval: 0.01, description: "nginx is up" });
  await assert.rejects(c.maybeCheck(true), (e: unknown) => {
    assert.ok(e instanceof PollingConditionFailedError, String(e));
    assert.equal(e.description, "nginx is up");
    assert.equal(e.message, "Polling condition failed: nginx is up");
    assert.equal(e.code, "NTT_POLLING_CONDITION");
    assert.equal(e.cause, undefined);
    return true;
  });
});

test("a throwing condition throws PollingConditionFailedError, with the error as cause", async () => {
  const boom = new Error("curl failed");
  const c = new PollingCondition(
    async () => {
      throw boom;
    },
    new Set(),
    { description: "web answers" },
  );
  await assert.rejects(c.maybeCheck(true), (e: unknown) => e instanceof PollingConditionFailedError && e.cause === boom && /web answers/.test(e.message));
});

test("anything but false (or an exception) holds: true, undefined, 0, a string; async too", async () => {
  for (const value of [true, undefined, 0, "", "yes", {}]) {
    const c = new PollingCondition(() => value, new Set(), { description: "d" });
    await c.maybeCheck(true);
    const a = new PollingCondition(async () => value, new Set(), { description: "d" });
    await a.maybeCheck(true);
  }
  await assert.rejects(new PollingCondition(async () => false, new Set()).maybeCheck(true), PollingConditionFailedError);
});

test("null holds, as nixpkgs' None does (and as the doc comment says: only false or an exception fail)", async () => {
  const c = new PollingCondition(() => null, new Set(), { description: "returns null" });
  await c.maybeCheck(true);
});

test("the description defaults to the function's name", () => {
  function webServerAnswers(): boolean {
    return true;
  }
  assert.equal(new PollingCondition(webServerAnswers, new Set()).description, "webServerAnswers");
  assert.equal(new PollingCondition(webServerAnswers, new Set(), { description: "custom" }).description, "custom");
});

test("during(fn) registers the condition while fn runs and unregisters it after, also when fn throws", async () => {
  const registry = new Set<PollingCondition>();
  const c = new PollingCondition(() => true, registry, { description: "d" });
  assert.equal(registry.has(c), false);
  const result = await c.during(async () => {
    assert.equal(registry.has(c), true);
    await delay(5);
    assert.equal(registry.has(c), true);
    return "value";
  });
  assert.equal(result, "value");
  assert.equal(registry.has(c), false);
  const oops = new Error("oops");
  await assert.rejects(
    c.during(async () => {
      assert.equal(registry.has(c), true);
      throw oops;
    }),
    (e: unknown) => e === oops,
  );
  assert.equal(registry.has(c), false);
});

test("enter() returns a disposable that unregisters", () => {
  const registry = new Set<PollingCondition>();
  const c = new PollingCondition(() => true, registry);
  {
    using _ = c.enter();
    assert.ok(registry.has(c));
  }
  assert.equal(registry.has(c), false);
});

test("a condition whose own code runs commands (which call maybeCheck) does not recurse", async () => {
  const registry = new Set<PollingCondition>();
  let calls = 0;
  // What the driver does before every command.
  const beforeCommand = async () => {
    for (const c of [...registry]) await c.maybeCheck();
  };
  const c: PollingCondition = new PollingCondition(
    async () => {
      calls++;
      if (calls > 5) throw new Error("recursion");
      await beforeCommand(); // the condition runs a command
      await c.maybeCheck(true); // even a forced check from inside is skipped
      return true;
    },
    registry,
    { interval: 0, description: "self-checking" },
  );
  await c.during(async () => {
    await beforeCommand();
    await beforeCommand();
  });
  assert.equal(calls, 2);
});

test("wait() waits until the condition holds, and times out naming it", async () => {
  let n = 0;
  const c = new PollingCondition(() => ++n >= 3, new Set(), { description: "third time lucky" });
  await c.wait({ timeout: 1.5 });
  assert.equal(n, 3);
  const never = new PollingCondition(() => false, new Set(), { description: "never true" });
  await assert.rejects(
    never.wait({ timeout: 0.2 }),
    (e: unknown) => e instanceof Error && /waiting for polling condition "never true" timed out/.test(e.message),
  );
});
