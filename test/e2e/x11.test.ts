// The X11 methods on the systemd guest booted into graphical.target, where
// Xvfb runs and one window ("Hello Window") opens.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { buildGuest } from "../guests/start-scripts.js";
import { runDriver, survivors, type Run } from "./harness.js";

const script = String.raw`
import assert from "node:assert/strict";
const began = performance.now();
await machine.waitForX({ timeout: 300 });
log("X ready after " + ((performance.now() - began) / 1000).toFixed(2) + " s");
await machine.waitForWindow(/Hello Window/, { timeout: 60 });
assert.ok((await machine.getWindowNames()).includes("Hello Window"));
const e = await machine.waitForWindow(/No Such Window/, { timeout: 2 }).catch((x) => x);
assert.equal(e?.name, "TimeoutError", String(e));
`;

let run: Run;

before(async () => {
  await buildGuest("systemd");
  run = await runDriver(script, { guest: "systemd", env: { QEMU_KERNEL_PARAMS: "systemd.unit=graphical.target" }, limit: 400 });
});

test("waitForX, waitForWindow and getWindowNames against a real X server", (t) => {
  assert.equal(run.code, 0, run.output.slice(-4000));
  t.diagnostic(run.output.match(/X ready after [\d.]+ s/)?.[0] ?? "");
});

test("no QEMU is left", async () => {
  assert.deepEqual(await survivors(run.qemuPids), []);
});
