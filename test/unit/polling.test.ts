// runtime/driver/polling.ts: nixpkgs' retry (fn(false) until true, then one fn(true) at
// the deadline) with back-off, a deadline and an outer AbortSignal.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { sleep } from "../../runtime/async/abort.js";
import { TestAbortedError, TimeoutError } from "../../runtime/errors.js";
import { DEFAULT_WAIT_TIMEOUT, backoff, retry } from "../../runtime/driver/polling.js";

interface Call {
  lastTry: boolean;
  at: number;
  signal: AbortSignal | undefined;
}

/** Wraps `answer` and records every call with its time (ms since `began`). */
function tracked(answer: (call: Call, index: number) => boolean | Promise<boolean>) {
  const began = performance.now();
  const calls: Call[] = [];
  const fn = (lastTry: boolean, signal: AbortSignal | undefined) => {
    const call = { lastTry, at: performance.now() - began, signal };
    calls.push(call);
    return answer(call, calls.length - 1);
  };
  return { fn, calls, elapsed: () => performance.now() - began };
}

test("backoff: 50, 100, then 200 ms for the first 30 s; 500 ms until 2 min; 1 s after that (as the README says)", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 10].map((attempt) => backoff(attempt, 0)),
    [50, 100, 200, 200, 200, 200, 200],
  );
  assert.equal(backoff(1, 29_999), 100);
  assert.equal(backoff(0, 30_000), 500);
  assert.equal(backoff(50, 119_999), 500);
  assert.equal(backoff(0, 120_000), 1000);
  assert.equal(backoff(400, 3_600_000), 1000);
  // Huge attempt counts (2 ** attempt = Infinity) stay a number.
  assert.equal(backoff(5000, 0), 200);
});

test("the default timeout is nixpkgs' 900 s", () => {
  assert.equal(DEFAULT_WAIT_TIMEOUT, 900);
});

test("retry returns as soon as fn is true, after the back-off pauses, and calls fn no more", async () => {
  const t = tracked((_, i) => i === 2);
  await retry(t.fn, { timeout: 1.5, what: "waiting for x" });
  const took = t.elapsed();
  assert.equal(t.calls.length, 3);
  assert.ok(t.calls.every((c) => !c.lastTry));
  // 50 ms + 100 ms of back-off, and not a whole second as nixpkgs.
  assert.ok(took >= 140 && took < 600, `${took} ms`);
  assert.ok(t.calls[1]!.at - t.calls[0]!.at >= 45, JSON.stringify(t.calls.map((c) => c.at)));
  assert.ok(t.calls[2]!.at - t.calls[1]!.at >= 95, JSON.stringify(t.calls.map((c) => c.at)));
  await delay(300);
  assert.equal(t.calls.length, 3);
});

test("retry: true at the first try returns at once", async () => {
  const t = tracked(() => true);
  await retry(t.fn, { timeout: 1 });
  assert.equal(t.calls.length, 1);
  assert.ok(t.elapsed() < 100);
  assert.ok(t.calls[0]!.signal instanceof AbortSignal);
});

test("retry: after the deadline fn(true) is called exactly once, last, then TimeoutError names what and the machine", async () => {
  const t = tracked(() => false);
  await assert.rejects(retry(t.fn, { timeout: 0.5, what: "waiting for the moon", machine: "server" }), (e: unknown) => {
    assert.ok(e instanceof TimeoutError, String(e));
    assert.equal(e.what, "waiting for the moon");
    assert.equal(e.machine, "server");
    assert.equal(e.timeout, 0.5);
    assert.equal(e.code, "NTT_TIMEOUT");
    assert.equal(e.message, "server: waiting for the moon timed out after 0.5 s");
    return true;
  });
  const last = t.calls.filter((c) => c.lastTry);
  assert.equal(last.length, 1);
  assert.equal(t.calls[t.calls.length - 1], last[0]);
  assert.ok(last[0]!.at >= 480, `last try at ${last[0]!.at} ms`);
  // Tries at 0, 50, 150, 350 ms, then the deadline.
  assert.ok(t.calls.length >= 4 && t.calls.length <= 6, `${t.calls.length} calls`);
  await delay(250);
  assert.equal(t.calls.filter((c) => c.lastTry).length, 1);
});

test("retry: a last try that succeeds makes the whole retry succeed", async () => {
  const t = tracked((c) => c.lastTry);
  await retry(t.fn, { timeout: 0.2 });
  assert.equal(t.calls.filter((c) => c.lastTry).length, 1);
});

test("retry: without `what` the message still says what timed out", async () => {
  await assert.rejects(
    retry(() => false, { timeout: 0.1 }),
    (e: unknown) => e instanceof TimeoutError && e.message === "retry timed out after 0.1 s",
  );
});

test("retry: an outer abort during the pause rejects promptly with its reason and makes no last try", async () => {
  const t = tracked(() => false);
  const controller = new AbortController();
  const reason = new Error("global timeout");
  setTimeout(() => controller.abort(reason), 120); // during the 100 ms pause after the second try
  let rejectedAt = 0;
  await assert.rejects(
    retry(t.fn, { timeout: 1.5, signal: controller.signal }).finally(() => (rejectedAt = t.elapsed())),
    (e: unknown) => e === reason,
  );
  assert.ok(rejectedAt >= 110 && rejectedAt < 250, `rejected at ${rejectedAt} ms`);
  assert.deepEqual(
    t.calls.map((c) => c.lastTry),
    [false, false],
  );
  await delay(200);
  assert.equal(t.calls.length, 2);
});

test("retry: an outer abort during a try rejects with its reason, no last try", async () => {
  const controller = new AbortController();
  const reason = new Error("Ctrl-C");
  const t = tracked(async (c) => {
    if (c.lastTry) return true;
    setTimeout(() => controller.abort(reason), 50);
    await sleep(5000, c.signal);
    return false;
  });
  await assert.rejects(retry(t.fn, { timeout: 1.5, signal: controller.signal }), (e: unknown) => e === reason);
  assert.ok(t.elapsed() < 400);
  assert.deepEqual(
    t.calls.map((c) => c.lastTry),
    [false],
  );
});

test("retry: an outer abort with a non-Error reason rejects with a TestAbortedError carrying it", async () => {
  const controller = new AbortController();
  setTimeout(() => controller.abort("SIGINT"), 30);
  await assert.rejects(
    retry(() => false, { timeout: 1.5, signal: controller.signal }),
    (e: unknown) => e instanceof TestAbortedError && e.message === "SIGINT",
  );
});

test("retry: an already aborted signal rejects without calling fn", async () => {
  const reason = new Error("already over");
  const t = tracked(() => true);
  await assert.rejects(retry(t.fn, { timeout: 1, signal: AbortSignal.abort(reason) }), (e: unknown) => e === reason);
  assert.equal(t.calls.length, 0);
});

test("retry: a try cut short by the deadline leads to the last try, not to the try's error", async () => {
  for (const lastAnswer of [true, false]) {
    const t = tracked(async (c) => {
      if (c.lastTry) return lastAnswer;
      // A slow check that gives up with its own error when its signal aborts.
      await new Promise<never>((_, reject) => c.signal?.addEventListener("abort", () => reject(new Error("try cut short")), { once: true }));
      return false;
    });
    const promise = retry(t.fn, { timeout: 0.3, what: "slow check" });
    if (lastAnswer) {
      await promise;
    } else {
      await assert.rejects(promise, (e: unknown) => e instanceof TimeoutError && e.what === "slow check");
    }
    assert.deepEqual(
      t.calls.map((c) => c.lastTry),
      [false, true],
      `last try answers ${lastAnswer}`,
    );
    assert.ok(t.calls[1]!.at >= 280 && t.calls[1]!.at < 800, `last try at ${t.calls[1]!.at} ms`);
  }
});

test("retry: an error thrown by fn for a reason of its own is not retried", async () => {
  const bug = new TypeError("bug in the check");
  const t = tracked(() => {
    throw bug;
  });
  await assert.rejects(retry(t.fn, { timeout: 1 }), (e: unknown) => e === bug);
  assert.equal(t.calls.length, 1);
});

test("retry: fn may be synchronous or asynchronous", async () => {
  const t = tracked(async (_, i) => {
    await delay(5);
    return i === 1;
  });
  await retry(t.fn, { timeout: 1 });
  assert.equal(t.calls.length, 2);
});
