// Generator benchmark: wall time of `nixos-test-ts check` (generate + type check + lint + emit)
// in a cold process, for a 2-node and a 20-node test with a 100-line script, and where it goes;
// as users run it (bin/nixos-test-ts, which starts Node from the check's startup snapshot:
// generator/snapshot.ts), as `node dist/generator/cli.js` (which starts a second Node from it),
// and without the snapshot (NIXOS_TEST_TS_SNAPSHOT=0), interleaved so that all see the same machine.
//
//   npm run build && node dist/bench/generate.js [runs]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { usableSnapshot } from "../generator/snapshot.js";
import { median } from "./stats.js";

const runs = Number(process.argv[2] ?? 7);
const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "generator", "cli.js");
const LAUNCHER = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "nixos-test-ts");
const PHASES = ["manifest", "load ts-morph", "generate", "load typescript", "program", "type check", "lint", "emit", "process"] as const;
const SNAPSHOT = usableSnapshot();

/** Units a NixOS node has: ~300, most of them on every node, some templates. */
function units(i: number): string[] {
  const common = Array.from({ length: 280 }, (_, k) => `system-unit-${k}.service`);
  const templates = ["getty@.service", "serial-getty@.service", "systemd-fsck@.service", "user@.service", "modprobe@.service"];
  const own = Array.from({ length: 15 }, (_, k) => `node${i}-service-${k}.service`);
  return [...common, ...templates, ...own, "multi-user.target", "network-online.target", "sshd.service"];
}

function manifest(nodes: number): object {
  const name = (i: number): string => (nodes === 2 ? ["client", "server"][i] : `node${i + 1}`) as string;
  return {
    name: `bench-${nodes}`,
    vlans: [1, 2],
    nodes: Object.fromEntries(
      Array.from({ length: nodes }, (_, i) => [
        name(i),
        {
          vlans: i % 2 === 0 ? [1] : [1, 2],
          addresses: { "1": `192.168.1.${i + 1}` },
          units: units(i),
          ports: { tcp: [22, 80 + i], udp: [53] },
        },
      ]),
    ),
  };
}

/** 100 lines of an ordinary test: waits, commands, concurrency, subtests. */
function script(nodes: number): string {
  const name = (i: number): string => (nodes === 2 ? ["client", "server"][i % 2] : `node${(i % nodes) + 1}`) as string;
  const lines = ["await startAll();", `await Promise.all(Object.values(machines).map((m) => m.waitForUnit("multi-user.target")));`];
  for (let i = 0; lines.length < 96; i++) {
    const m = name(i);
    lines.push(
      `await subtest("step ${i}", async () => {`,
      `  await ${m}.waitForUnit("system-unit-${i % 280}.service");`,
      `  const out = await ${m}.succeed("echo ${i}", { timeout: 30 });`,
      `  if (!out.includes("${i}")) throw new Error(out);`,
      `  await Promise.all([${m}.waitForOpenPort(22), ${m}.waitForUnit("getty@tty${i % 6}.service")]);`,
      "});",
    );
  }
  lines.push(
    `const results = await Promise.allSettled([${name(0)}.succeed("true"), ${name(1)}.succeed("true")]);`,
    "log(`${results.length} settled`);",
    `void ${name(0)}.execute("sync");`,
    `await ${name(1)}.waitForUnit(runtimeUnit("transient.scope"));`,
  );
  return `${lines.join("\n")}\n`;
}

interface Sample {
  wall: number;
  phases: Record<string, number>;
}

/** How the check is started: bin/nixos-test-ts (as installed), `node dist/generator/cli.js`, or without the snapshot. */
type Start = "launcher" | "node cli.js" | "no snapshot";

/**
 * `fresh`: the generated module is made anew (ts-morph loaded) and checked as after a new manifest; otherwise the
 * one from the last run is up to date and reused, and the last check's verdict on it holds (an edit of the script).
 */
function measure(dir: string, fresh: boolean, start: Start): Sample {
  if (fresh) for (const f of [".test.generated.key", ".test.generated.checked"]) rmSync(join(dir, "out", f), { force: true });
  const env = start === "no snapshot" ? { ...process.env, NIXOS_TEST_TS_SNAPSHOT: "0" } : process.env;
  const args = ["check", "--manifest", "manifest.json", "--out", "out", "--timings", "test.ts"];
  const started = performance.now();
  const r = spawnSync(start === "launcher" ? LAUNCHER : process.execPath, start === "launcher" ? args : [CLI, ...args], {
    cwd: dir,
    encoding: "utf8",
    env,
  });
  const wall = performance.now() - started;
  if (r.status !== 0) throw new Error(`check failed:\n${r.stderr}`);
  const phases: Record<string, number> = {};
  for (const phase of PHASES) {
    const m = new RegExp(`${phase} (\\d+) ms`).exec(r.stderr);
    phases[phase] = Number(m?.[1] ?? NaN);
  }
  return { wall, phases };
}

function nodeStartup(): number {
  const started = performance.now();
  spawnSync(process.execPath, ["-e", "0"]);
  return performance.now() - started;
}

const rows: string[] = [];
const load = loadavg()
  .map((l) => l.toFixed(2))
  .join(" ");
console.log(`nixos-test-ts check, cold process each time (median of ${runs} runs; ${process.version}; ${cpus().length} cores, load ${load}):`);
const bare = median(Array.from({ length: runs }, nodeStartup));
console.log(`(\`node -e 0\` starts in ${Math.round(bare)} ms; "start" below is the wall time before the CLI's clock starts, "process" its clock.)`);
console.log(SNAPSHOT === undefined ? "no startup snapshot built (npm run build makes it): every row loads TypeScript" : `startup snapshot: ${SNAPSHOT}`);
for (const nodes of [2, 20]) {
  const dir = mkdtempSync(join(tmpdir(), "ntt-bench-gen-"));
  try {
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest(nodes)));
    writeFileSync(join(dir, "test.ts"), script(nodes));
    measure(dir, true, "launcher"); // warm the page cache, not the process
    // Interleaved, so all see the same machine: a new manifest (generate with ts-morph), and an edit of the script only;
    // each as installed, and without the snapshot; the edit also as `node dist/generator/cli.js`.
    const series = [
      ["module generated", true, "launcher"],
      ["module up to date", false, "launcher"],
      ["up to date, node cli.js", false, "node cli.js"],
      ["generated, no snap", true, "no snapshot"],
      ["up to date, no snap", false, "no snapshot"],
    ] as const;
    const samples = series.map((): Sample[] => []);
    for (let i = 0; i < runs; i++) series.forEach(([, fresh, start], k) => samples[k]?.push(measure(dir, fresh, start)));
    for (const [k, [what]] of series.entries()) {
      const mine = samples[k] as Sample[];
      const wall = median(mine.map((s) => s.wall));
      const phase = (p: string): number => median(mine.map((s) => s.phases[p] as number));
      const accounted = PHASES.slice(0, -1).reduce((sum, p) => sum + phase(p), 0);
      rows.push(
        // Before the CLI's clock starts: Node's start, from the snapshot also the heap's deserialisation (and for node cli.js the first Node).
        `${String(nodes).padStart(2)} nodes, ${what.padEnd(23)}: ${(wall / 1000).toFixed(2)} s wall  =  start ${Math.round(wall - phase("process"))} ms + CLI import ${Math.round(phase("process") - accounted)} ms` +
          ` + load ts-morph ${phase("load ts-morph")} + generate ${phase("generate")} + load typescript ${phase("load typescript")}` +
          ` + program ${phase("program")} + type check ${phase("type check")} + lint ${phase("lint")} + emit ${phase("emit")} ms`,
      );
      console.log(rows[rows.length - 1]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
