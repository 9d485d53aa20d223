// Containers without containers: preflight messages, the unsupported-method
// error and its types, start-script names. (Real containers: test/e2e/containers.test.ts.)
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../../lib/errors.js";
import { machineNameFromStartScript } from "../../lib/names.js";
import { checkContainerTools } from "../../runtime/host/preflight.js";
import { CAPABILITY_METHODS, unsupported } from "../../runtime/machine/backend.js";
import type { ContainerMachine, Machine } from "../../runtime/index.js";

test("preflight: not root is an error naming the containers and what to do", () => {
  assert.throws(
    () => checkContainerTools(["db", "web"], [], 1000),
    (e: unknown) => e instanceof ConfigError && /containers db, web: systemd-nspawn containers need root; run the driver as root/.test(e.message),
  );
});

test("preflight: a missing tool names the package to install", () => {
  const path = process.env.PATH;
  process.env.PATH = "/nonexistent";
  try {
    assert.throws(() => checkContainerTools(["db"], [1], 0), /container db: systemd-nspawn is not on PATH: install systemd-container/);
  } finally {
    process.env.PATH = path;
  }
});

test("a VM-only method on a container: one error naming method and kind", () => {
  const e = unsupported("db", "container", "screen", "screenshot");
  assert.equal(e.code, "NTT_UNSUPPORTED");
  assert.match(e.message, /^db: screenshot\(\) is not available on a container machine \(it has no screen\)/);
});

test("ContainerMachine lacks exactly the capability methods (checked by the compiler)", () => {
  type Missing = Exclude<keyof Machine, keyof ContainerMachine>;
  type Listed = (typeof CAPABILITY_METHODS)[keyof typeof CAPABILITY_METHODS][number];
  const same: [Missing] extends [Listed] ? ([Listed] extends [Missing] ? true : false) : false = true;
  assert.equal(same, true);
  const kept: keyof ContainerMachine = "waitForUnit";
  assert.equal(kept, "waitForUnit");
});

test("run-<name>-nspawn names its machine", () => {
  assert.equal(machineNameFromStartScript("/nix/store/x/bin/run-db-nspawn"), "db");
  assert.equal(machineNameFromStartScript("./run-web-vm"), "web");
});
