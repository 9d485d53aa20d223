import { register } from "node:module";
import { pathToFileURL } from "node:url";
import type { Driver } from "../driver/driver.js";
import { setCurrentDriver } from "../driver/current.js";

let hooksRegistered = false;
let runs = 0;

/**
 * Runs a test script (an ES module) with the test symbols as globals and as
 * exports of "nixos-test-ts". Its top-level await is the test; it ends when
 * the module has evaluated, or when the driver aborts (global timeout, signal).
 */
export async function runTestScript(driver: Driver, scriptPath: string): Promise<void> {
  if (!hooksRegistered) {
    register(new URL("./hooks.js", import.meta.url));
    hooksRegistered = true;
  }
  const symbols = driver.testSymbols();
  Object.assign(globalThis, symbols);
  setCurrentDriver(driver);
  driver.logger.log(`additionally exposed symbols: ${Object.keys(symbols).join(", ")}`);
  // A module runs once per URL; the interactive driver's runTests() may run it again.
  const url = pathToFileURL(scriptPath);
  if (runs++ > 0) url.searchParams.set("run", String(runs));
  await driver.guard(import(url.href));
}
