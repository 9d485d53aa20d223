#!/usr/bin/env node
// Runs the test tiers: `unit` (no QEMU, no nix), `e2e` (real guests), `nix`
// (real nix builds), or `all`. Each tier's prerequisites are checked first
// (scripts/prereqs.mjs). Files run in a Node process each (the unit tier's
// short ones batched, see entry()), up to `--jobs` at once (two TCG guests at
// a time is what two cores bear; three unit entries, which often wait on fake
// guests and timers), their output printed whole as each ends; the end
// prints every entry's time.
// `all` runs the three tiers as one pool, longest files first (times from the
// last run on this machine, else scripts/test-times.json): a tier's last long
// file no longer runs alone while the next tier waits.
//
//   node scripts/run-tests.mjs [--jobs N] [unit|e2e|nix|all|dist/test/...]...
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { prerequisites } from "./prereqs.mjs";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const TIERS = {
  // Three: several unit entries mostly wait (fake guests, timers), so a third keeps both cores busy.
  // The unit tier's short files share a Node process per directory (see batches()); these run alone: they are long
  // (best spread over the jobs), or a test counts what its process has done before (snapshot.test).
  unit: {
    dirs: ["dist/test/unit", "dist/test/generator"],
    jobs: 3,
    alone: ["generator/snapshot", "unit/driver-fake", "unit/repl-fake", "unit/framing", "unit/typed-script"],
  },
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

/** Seconds per entry (its name: paths relative to the repo), for ordering: the last run's, over the committed baseline. */
const BASELINE = join(REPO, "scripts", "test-times.json");
const LAST_RUN = join(REPO, "node_modules", ".cache", "nixos-test-ts", "test-times.json");

function knownTimes() {
  const read = (path) => {
    try {
      return JSON.parse(readFileSync(path, "utf8"));
    } catch {
      return {};
    }
  };
  return { ...read(BASELINE), ...read(LAST_RUN) };
}

/** Keeps the times of the entries there are now (`current`: their names), this run's over the known ones. */
function saveTimes(results, current) {
  const known = knownTimes();
  const times = Object.fromEntries(Object.entries(known).filter(([name]) => current.has(name)));
  for (const r of results) times[r.name] = Math.round(r.seconds * 10) / 10;
  try {
    mkdirSync(dirname(LAST_RUN), { recursive: true });
    writeFileSync(LAST_RUN, `${JSON.stringify(times, null, 2)}\n`);
  } catch {
    // Only an ordering hint.
  }
}

/**
 * What one Node process runs: a file, or a batch of files imported one after another (their tests then run in
 * order in that process). A batch loads TypeScript, ts-morph and the runtime once instead of once per file (~1 s
 * of CPU each for the generator's files), which is most of what a short file costs. A file in a batch must leave
 * no global state behind (environment, globals, handlers) that another file could trip over.
 */
function entry(files) {
  return { files, name: files.map((f) => relative(REPO, f)).join(" + ") };
}

/** A tier's files as entries: `alone` files (and every file of a tier without `alone`) one each, the rest batched per directory. */
function batches(tier, files) {
  if (tier.alone === undefined) return files.map((f) => entry([f]));
  const isAlone = (f) => tier.alone.some((a) => f.endsWith(`/${a}.test.js`));
  const byDir = new Map();
  for (const f of files.filter((f) => !isAlone(f))) byDir.set(dirname(f), [...(byDir.get(dirname(f)) ?? []), f]);
  return [...files.filter(isAlone).map((f) => entry([f])), ...[...byDir.values()].map(entry)];
}

/** Longest first (an entry never timed counts as long: it may be). */
function longestFirst(entries) {
  const times = knownTimes();
  const t = (e) => times[e.name] ?? 60;
  return [...entries].sort((a, b) => t(b) - t(a) || a.name.localeCompare(b.name));
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

/**
 * One Node process per entry, running its file as a script (or importing its batch): node:test reports and sets
 * the exit status itself, and `node --test` would start a second Node per file only to start this one (~0.2 s of CPU).
 */
function runEntry({ files, name }) {
  const started = performance.now();
  const script =
    files.length === 1 ? files : ["--input-type=module", "-e", files.map((f) => `await import(${JSON.stringify(pathToFileURL(f).href)});`).join("\n")];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--test-reporter=spec", ...script], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    child.on("close", () => running.delete(child));
    const chunks = [];
    child.stdout.on("data", (c) => chunks.push(c));
    child.stderr.on("data", (c) => chunks.push(c));
    child.on("close", (code, signal) => {
      const output = Buffer.concat(chunks).toString();
      const count = (what) => Number(new RegExp(`^ℹ ${what} (\\d+)$`, "m").exec(output)?.[1] ?? 0);
      resolve({ files, name, ok: code === 0, code, signal, seconds: (performance.now() - started) / 1000, output, pass: count("pass"), fail: count("fail") });
    });
  });
}

/** The tier a file (or an entry: its first file) belongs to, and how many of its entries may run at once (nix: one). */
function tierOf(file) {
  const name = Object.keys(TIERS).find((t) => TIERS[t].dirs.some((d) => file.startsWith(join(REPO, d) + "/")));
  return name === undefined ? { name: "other", jobs: Infinity } : { name, jobs: TIERS[name].jobs };
}

async function runPool(entries, jobs, results) {
  const queue = [...entries];
  const running = new Map();
  // The first queued file whose tier has room: two nix files never run at once, even in one pool.
  // A worker that finds none ends; the files left wait for the worker running their tier.
  const next = () => {
    const at = queue.findIndex((e) => {
      const tier = tierOf(e.files[0]);
      return (running.get(tier.name) ?? 0) < tier.jobs;
    });
    return at === -1 ? undefined : queue.splice(at, 1)[0];
  };
  const worker = async () => {
    for (let e = next(); e !== undefined && !stopping; e = next()) {
      const tier = tierOf(e.files[0]).name;
      running.set(tier, (running.get(tier) ?? 0) + 1);
      process.stdout.write(`▶ ${e.name}\n`);
      const r = await runEntry(e);
      process.stdout.write(r.output);
      process.stdout.write(`${r.ok ? "✔" : "✖"} ${e.name} (${r.seconds.toFixed(1)} s)\n`);
      results.push(r);
      running.set(tier, (running.get(tier) ?? 1) - 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, entries.length) }, worker));
}

// A signal to the runner goes on to the files it runs (their drivers end their VMs), and no further file starts.
const running = new Set();
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    stopping = true;
    for (const child of running) child.kill(signal);
    process.exitCode = 128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }[signal] ?? 0);
  });
}

const { jobs, targets } = parseArgs(process.argv.slice(2));
const results = [];
const tierTimes = [];
let blocked = false;
const tierFiles = (tier) => tier.dirs.flatMap((d) => testFiles(join(REPO, d)));
const runnable = (target) => {
  const problems = prerequisites(target, REPO);
  if (problems.length === 0) return true;
  process.stderr.write(`✖ tier ${target} cannot run on this machine:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
  blocked = true;
  return false;
};
const allTiers = Object.keys(TIERS).every((t) => targets.includes(t)) && targets.length === Object.keys(TIERS).length;
if (allTiers) {
  // One pool: every tier's prerequisites first, then all files, longest first.
  const started = performance.now();
  const ready = targets.filter(runnable);
  await runPool(longestFirst(ready.flatMap((t) => batches(TIERS[t], tierFiles(TIERS[t])))), jobs ?? 3, results);
  for (const t of ready) {
    const mine = results.filter((r) => tierFiles(TIERS[t]).includes(r.files[0]));
    tierTimes.push([`${t} (sum of files)`, mine.reduce((n, r) => n + r.seconds, 0)]);
  }
  tierTimes.push(["all (wall)", (performance.now() - started) / 1000]);
}
for (const target of allTiers ? [] : targets) {
  const tier = TIERS[target];
  const started = performance.now();
  if (tier !== undefined) {
    if (!runnable(target)) continue;
    await runPool(longestFirst(batches(tier, tierFiles(tier))), jobs ?? tier.jobs, results);
  } else {
    const path = join(REPO, target);
    await runPool(
      (statSync(path).isDirectory() ? testFiles(path) : [path]).map((f) => entry([f])),
      jobs ?? 1,
      results,
    );
  }
  tierTimes.push([target, (performance.now() - started) / 1000]);
}

saveTimes(results, new Set(Object.values(TIERS).flatMap((tier) => batches(tier, tierFiles(tier)).map((e) => e.name))));
const failed = results.filter((r) => !r.ok);
process.stdout.write("\nfile times:\n");
for (const r of [...results].sort((a, b) => b.seconds - a.seconds)) {
  process.stdout.write(`  ${r.seconds.toFixed(1).padStart(6)} s  ${r.ok ? "pass" : "FAIL"}  ${r.name}\n`);
}
process.stdout.write(`tier times: ${tierTimes.map(([t, s]) => `${t} ${s.toFixed(0)} s`).join(", ")}\n`);
const sum = (key) => results.reduce((n, r) => n + r[key], 0);
process.stdout.write(`tests: ${sum("pass")} passed, ${sum("fail")} failed\n`);
const files = (rs) => rs.reduce((n, r) => n + r.files.length, 0);
process.stdout.write(`${files(results) - files(failed)} files passed, ${files(failed)} failed${blocked ? ", some tiers could not run" : ""}\n`);
for (const r of failed) process.stdout.write(`  failed: ${r.name} (exit ${r.code ?? r.signal})\n`);
process.exit(stopping ? process.exitCode : failed.length > 0 || blocked ? 1 : 0);
