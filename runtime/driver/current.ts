import type { Driver } from "./driver.js";
import { UsageError } from "../errors.js";

let current: Driver | undefined;

/** The driver running the test script; the functions exported for scripts act on it. */
export function currentDriver(): Driver {
  if (current === undefined) {
    throw new UsageError("no test is running: these functions work inside a test script run by nixos-test-driver");
  }
  return current;
}

export function setCurrentDriver(driver: Driver | undefined): void {
  current = driver;
}
