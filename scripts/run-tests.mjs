#!/usr/bin/env node
// Runs the whole suite: unit tests, then the e2e tests on real guests, one
// file at a time (two TCG guests at once is all two cores can take).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function testFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return testFiles(path);
    return name.endsWith(".test.js") ? [path] : [];
  }).sort();
}

const only = process.argv.slice(2);
const suites = only.length > 0 ? only : ["dist/test/unit", "dist/test/generator", "dist/test/nix", "dist/test/e2e"];
const files = suites.flatMap((s) => (s.endsWith(".js") ? [s] : testFiles(s)));
const result = spawnSync(process.execPath, ["--test", "--test-concurrency=1", "--test-reporter=spec", ...files], { stdio: "inherit" });
process.exit(result.status ?? 1);
