#!/usr/bin/env node
// Runs the test tiers: `unit` (no QEMU, no nix), `e2e` (real guests), `nix`
// (real nix builds), or `all`. Each tier's prerequisites are checked first
// (scripts/prereqs.mjs). Files run as separate `node --test` processes, up to
// `--jobs` at once (two TCG guests at a time is what two cores bear; three
// unit files, which often wait on fake guests and timers), their
// output printed whole as each file ends; the end prints every file's time.
// The slowest files (by their last run's time, kept in
// ~/.cache/nixos-test-ts/test-times-<checkout hash>.json) start first, so that
// a long file does not start last and run alone.
//
//   node scripts/run-tests.mjs [--jobs N] [unit|e2e|nix|all|dist/test/...]...
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { prerequisites } from "./prereqs.mjs";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const TIERS = {
  // Three: several unit files mostly wait (fake guests, timers), so a third keeps both cores busy (47 s instead of 54 s here).
  unit: { dirs: ["dist/test/unit", "dist/test/generator"], jobs: 3 },
  e2e: { dirs: ["dist/test/e2e"], jobs: 2 },
  nix: { dirs: ["dist/test/nix"], jobs: 1 },
};

function testFiles(dir) {
  return readdirSync(dir)
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return testFiles(path);
      return name.endsWith(".test.js") ? [path] : [];
    })
    .sort();
}

// Not in dist/: test/nix copies dist/ into the store, and a file that changes at every run would rebuild its users.
const CACHE = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "nixos-test-ts");
const TIMES = join(CACHE, `test-times-${createHash("sha256").update(REPO).digest("hex").slice(0, 12)}.json`);

function lastTimes() {
  try {
    return JSON.parse(readFileSync(TIMES, "utf8"));
  } catch {
    return {};
  }
}

/** Longest first (files never timed count as long): the pool then ends with short files on every worker. */
function slowestFirst(files, times) {
  const time = (f) => times[relative(REPO, f)] ?? Number.POSITIVE_INFINITY;
  return [...files].sort((a, b) => time(b) - time(a));
}

function parseArgs(argv) {
  let jobs;
  const targets = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--jobs") jobs = Number(argv[++i]);
    else targets.push(argv[i]);
  }
  if (jobs !== undefined && !(Number.isInteger(jobs) && jobs > 0)) throw new Error("--jobs takes a positive integer");
  return { jobs, targets: targets.length === 0 || targets.includes("all") ? Object.keys(TIERS) : targets };
}

/** One `node --test` process per file; resolves with its status and time. */
function runFile(file) {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--test", "--test-reporter=spec", file], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    const chunks = [];
    child.stdout.on("data", (c) => chunks.push(c));
    child.stderr.on("data", (c) => chunks.push(c));
    child.on("close", (code, signal) => {
      const output = Buffer.concat(chunks).toString();
      const count = (what) => Number(new RegExp(`^ℹ ${what} (\\d+)$`, "m").exec(output)?.[1] ?? 0);
      resolve({ file, ok: code === 0, code, signal, seconds: (performance.now() - started) / 1000, output, pass: count("pass"), fail: count("fail") });
    });
  });
}

async function runPool(files, jobs, results) {
  const queue = slowestFirst(files, times);
  const worker = async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      process.stdout.write(`▶ ${relative(REPO, file)}\n`);
      const r = await runFile(file);
      process.stdout.write(r.output);
      process.stdout.write(`${r.ok ? "✔" : "✖"} ${relative(REPO, file)} (${r.seconds.toFixed(1)} s)\n`);
      results.push(r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, worker));
}

// Children are killed with us: node --test ends its own subprocesses on SIGINT/SIGTERM.
const { jobs, targets } = parseArgs(process.argv.slice(2));
const times = lastTimes();
const results = [];
const tierTimes = [];
let blocked = false;
for (const target of targets) {
  const tier = TIERS[target];
  const started = performance.now();
  if (tier !== undefined) {
    const problems = prerequisites(target, REPO);
    if (problems.length > 0) {
      process.stderr.write(`✖ tier ${target} cannot run on this machine:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
      blocked = true;
      continue;
    }
    await runPool(tier.dirs.flatMap((d) => testFiles(join(REPO, d))), jobs ?? tier.jobs, results);
  } else {
    const path = join(REPO, target);
    await runPool(statSync(path).isDirectory() ? testFiles(path) : [path], jobs ?? 1, results);
  }
  tierTimes.push([target, (performance.now() - started) / 1000]);
}

const failed = results.filter((r) => !r.ok);
for (const r of results) times[relative(REPO, r.file)] = Number(r.seconds.toFixed(1));
try {
  mkdirSync(CACHE, { recursive: true });
  writeFileSync(TIMES, `${JSON.stringify(times, null, 2)}\n`);
} catch {
  // Only the order of the next run depends on it.
}
process.stdout.write("\nfile times:\n");
for (const r of [...results].sort((a, b) => b.seconds - a.seconds)) {
  process.stdout.write(`  ${r.seconds.toFixed(1).padStart(6)} s  ${r.ok ? "pass" : "FAIL"}  ${relative(REPO, r.file)}\n`);
}
process.stdout.write(`tier times: ${tierTimes.map(([t, s]) => `${t} ${s.toFixed(0)} s`).join(", ")}\n`);
const sum = (key) => results.reduce((n, r) => n + r[key], 0);
process.stdout.write(`tests: ${sum("pass")} passed, ${sum("fail")} failed\n`);
process.stdout.write(`${results.length - failed.length} files passed, ${failed.length} failed${blocked ? ", some tiers could not run" : ""}\n`);
for (const r of failed) process.stdout.write(`  failed: ${relative(REPO, r.file)} (exit ${r.code ?? r.signal})\n`);
process.exit(failed.length > 0 || blocked ? 1 : 0);
