/**
 * The check's startup snapshot: a V8 heap in which the TypeScript compiler is
 * loaded and the standard library's and the runtime's declarations are parsed
 * and bound (snapshot-entry.cts). `nixos-test-ts check` started from it skips
 * ~0.8 s of its ~1.5 s.
 *
 * `npm run build` makes it (`node dist/generator/snapshot.js`) in
 * dist/generator/snapshot/, named by a key of what it depends on: the Node
 * binary's version and platform, the TypeScript version, the check's compiler
 * options (which hold this package's path) and the entry's code. A snapshot
 * with another key is never used: the check then runs as it would without
 * one. Declarations edited since the snapshot was made are still seen: the
 * check compares each cached file's text with the file on disk and parses
 * the ones that differ. NIXOS_TEST_TS_SNAPSHOT=0 turns it off.
 *
 * Only node: modules and compiler-options.js are imported: the CLI imports
 * this file before it knows in which process it will run.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DIST, GENERATED_FILE, tsconfigOptions } from "./compiler-options.js";
import { SCRIPT_ENV, SCRIPT_ENV_FILE } from "./script-env.js";

/** Where the snapshots are kept (a directory of the package; the Nix package builds it with the rest). */
export const SNAPSHOT_DIR = join(DIST, "generator", "snapshot");
const ENTRY = join(DIST, "generator", "snapshot-entry.cjs");
/** The stand-in root whose imports make the program whose declarations are cached. It is never read from disk. */
const ROOT = join(DIST, "generator", "snapshot-root.ts");
const ROOT_TEXT = 'import "nixos-test-ts";\nimport "nixos-test-ts/typing";\nexport {};\n';

/** The test the snapshot's build checks once (in memory), so that the checker's code is compiled in it. */
const WARM_UP_UNITS = ["multi-user.target", "sshd.service", "getty@.service", ...Array.from({ length: 40 }, (_, i) => `unit-${i}.service`)];
const WARM_UP_MANIFEST = {
  name: "warm-up",
  vlans: [1, 2],
  nodes: {
    client: { vlans: [1], units: WARM_UP_UNITS, ports: { tcp: [22], udp: [] } },
    router: { vlans: [1, 2], units: [...WARM_UP_UNITS, "dnsmasq.service"], ports: { tcp: [22], udp: [53] } },
    server: { vlans: [2], units: [...WARM_UP_UNITS, "nginx.service"], ports: { tcp: [22, 80], udp: [53] } },
  },
};
const WARM_UP_SCRIPT = `await startAll();
await Promise.all(machines.map((m) => m.waitForUnit("multi-user.target")));
await Promise.all(Object.values(machines).map((m) => m.waitForOpenPort(22)));
await subtest("serves", async () => {
  await server.waitForUnit("nginx.service");
  await Promise.all([server.waitForOpenPort(80), client.waitForUnit("getty@tty1.service")]);
  const out = await client.succeed("curl -s http://server/", { timeout: 30 });
  if (!out.includes("ok")) throw new Error(out);
  t.assertEqual(out.trim(), "ok");
});
const results = await Promise.allSettled([client.execute("true"), server.succeed("true")]);
log(\`\${results.length} settled\`);
await client.waitForUnit(runtimeUnit("transient.scope"));
`;

/** What the snapshot leaves on globalThis (set by snapshot-entry.cts). */
export interface Snapshot {
  ts: typeof import("typescript");
  /** The options the cached files were made with: {@link optionsKey} of the check that may use them. */
  key: string;
  files: Map<string, import("typescript").SourceFile>;
}

/** Set by the CLI for the Node it starts from the snapshot (see {@link relaunched}); taken off the environment at once. */
export const RELAUNCHED_ENV = "NIXOS_TEST_TS_RELAUNCHED";
const relaunchedByCli = process.env[RELAUNCHED_ENV] === "1";
delete process.env[RELAUNCHED_ENV];

/** Whether a first Node started this one (from the snapshot), rather than bin/nixos-test-ts directly: `--timings` tells. */
export function relaunched(): boolean {
  return relaunchedByCli;
}

/** The snapshot this process was started from, if any. */
export function currentSnapshot(): Snapshot | undefined {
  return (globalThis as { __nixosTestTsSnapshot?: Snapshot }).__nixosTestTsSnapshot;
}

/** The compiler options the cached files are valid for; a check with other options (--node-types) does not use them. */
export function optionsKey(options: { nodeTypes?: boolean } = {}): string {
  return JSON.stringify(tsconfigOptions(options));
}

function typescriptFile(): string {
  return createRequire(import.meta.url).resolve("typescript");
}

/** The snapshot file for this Node, this TypeScript and this package. */
export function snapshotPath(): string {
  const ts = typescriptFile();
  const hash = createHash("sha256")
    .update(`${process.version} ${process.platform} ${process.arch} ${process.execPath}\n`)
    .update(readFileSync(join(dirname(dirname(ts)), "package.json")))
    .update(ts)
    .update(optionsKey())
    .update(readFileSync(ENTRY));
  return join(SNAPSHOT_DIR, `check-${hash.digest("hex").slice(0, 24)}.blob`);
}

/**
 * What bin/nixos-test-ts reads to start Node from the snapshot itself: the Node binary that made it (as
 * `readlink -f` names it), that binary's size and mtime (as `stat -c '%s %Y'` prints them: a Node upgraded in
 * place no longer fits, and would refuse the blob), and the blob's name in SNAPSHOT_DIR.
 */
const LAUNCH_FILE = join(SNAPSHOT_DIR, "launch");

function writeLaunchFile(blob: string): void {
  const node = statSync(process.execPath);
  const partial = `${LAUNCH_FILE}.${process.pid}.partial`;
  writeFileSync(partial, `${process.execPath}\n${node.size} ${Math.floor(node.mtimeMs / 1000)}\n${basename(blob)}\n`);
  renameSync(partial, LAUNCH_FILE);
}

/**
 * Whether this process, started from a snapshot, was started from the one this Node and TypeScript would use
 * now. The launcher (bin/nixos-test-ts) takes the last one built: after an update of TypeScript without a build
 * it is another, whose compiler the check must not use.
 */
export function startedFromCurrentSnapshot(): boolean {
  const at = process.execArgv.indexOf("--snapshot-blob");
  try {
    return at !== -1 && process.execArgv[at + 1] === snapshotPath();
  } catch {
    return false;
  }
}

/** The snapshot to start the check from, or undefined (none built for this Node/TypeScript/package, or turned off). */
export function usableSnapshot(): string | undefined {
  if (process.env.NIXOS_TEST_TS_SNAPSHOT === "0") return undefined;
  try {
    const blob = snapshotPath();
    return existsSync(blob) ? blob : undefined;
  } catch {
    return undefined;
  }
}

/** Every declaration file of the package (what the snapshot may cache) and the code that shapes the snapshot's contents. */
function inputsHash(key: string): string {
  const hash = createHash("sha256").update(key);
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        if (path !== SNAPSHOT_DIR) walk(path);
      } else if (name.endsWith(".d.ts") || path === fileURLToPath(import.meta.url) || name === "generate.js") {
        hash.update(`${path}\n`).update(readFileSync(path));
      }
    }
  };
  for (const dir of ["lib", "runtime", "generator"]) walk(join(DIST, dir));
  return hash.digest("hex");
}

/**
 * Builds the snapshot (~3 s; it loads the generator for the warm-up test), unless the one there was built from the
 * same declarations and code: a heap image is not reproducible byte for byte, and a dist/ that changes at every
 * build would make Nix rebuild whatever depends on it (test/nix copies dist/ into the store). Safe to run
 * concurrently: each build writes its own file and renames it into place. Snapshots with other keys (an older
 * Node or TypeScript) are removed.
 */
export async function buildSnapshot(): Promise<{ blob: string; bytes: number; rebuilt: boolean }> {
  const blob = snapshotPath();
  const inputs = inputsHash(blob);
  const stamp = `${blob}.inputs`;
  try {
    if (existsSync(blob) && readFileSync(stamp, "utf8") === inputs) {
      writeLaunchFile(blob);
      return { blob, bytes: statSync(blob).size, rebuilt: false };
    }
  } catch {
    // No stamp: build.
  }
  const [{ generateModule }, { parseManifest }] = await Promise.all([import("./generate.js"), import("../lib/manifest.js")]);
  const generated = generateModule(parseManifest(WARM_UP_MANIFEST, "warm-up manifest"), { manifestPath: "manifest.json", command: "nixos-test-ts generate" });
  const warmUp = { dir: join(SNAPSHOT_DIR, "warm-up"), files: { "test.ts": WARM_UP_SCRIPT, [GENERATED_FILE]: generated, [SCRIPT_ENV_FILE]: SCRIPT_ENV } };
  mkdirSync(SNAPSHOT_DIR, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "nixos-test-ts-snapshot-"));
  const partial = join(SNAPSHOT_DIR, `.${process.pid}.${Date.now()}.partial`);
  try {
    const spec = join(work, "spec.json");
    writeFileSync(
      spec,
      JSON.stringify({ typescript: typescriptFile(), options: tsconfigOptions(), root: ROOT, rootText: ROOT_TEXT, key: optionsKey(), warmUp }),
    );
    // tsc's CommonJS output sets exports.__esModule; a snapshot entry has no `exports`.
    const entry = join(work, "entry.cjs");
    writeFileSync(entry, `var exports = {};\n${readFileSync(ENTRY, "utf8")}`);
    const r = spawnSync(process.execPath, ["--snapshot-blob", partial, "--build-snapshot", entry, spec], { encoding: "utf8" });
    // Node warns that some built-ins (perf_hooks, vm) are "not yet fully verified" in snapshots; only a failure is shown.
    if (r.status !== 0 || !existsSync(partial)) throw new Error(`building the check's snapshot failed (exit ${r.status ?? r.signal}):\n${r.stderr}`);
    renameSync(partial, blob);
    writeFileSync(`${partial}.inputs`, inputs);
    renameSync(`${partial}.inputs`, stamp);
    writeLaunchFile(blob);
    for (const name of readdirSync(SNAPSHOT_DIR)) {
      const path = join(SNAPSHOT_DIR, name);
      if ((name.endsWith(".blob") || name.endsWith(".inputs")) && path !== blob && path !== stamp) rmSync(path, { force: true });
    }
    return { blob, bytes: statSync(blob).size, rebuilt: true };
  } finally {
    rmSync(partial, { force: true });
    rmSync(`${partial}.inputs`, { force: true });
    rmSync(work, { recursive: true, force: true });
  }
}

// `node dist/generator/snapshot.js`: what `npm run build` runs after tsc.
// Without a snapshot the check is only slower: a failure is a warning, not a failed build.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = performance.now();
  try {
    const { blob, bytes, rebuilt } = await buildSnapshot();
    const what = rebuilt ? "built" : "kept (same declarations and code)";
    process.stderr.write(
      `nixos-test-ts: ${what} the check's startup snapshot ${blob} (${(bytes / 1e6).toFixed(0)} MB, ${((performance.now() - started) / 1000).toFixed(1)} s)\n`,
    );
  } catch (error) {
    process.stderr.write(`nixos-test-ts: warning: no startup snapshot for the check (it will load TypeScript each time): ${(error as Error).message}\n`);
  }
}
