// Shared by the generator's tests: temporary tests (manifest + script), the check in process and the CLI.
import { spawn } from "node:child_process";
import { statSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ManifestJson } from "../../lib/manifest.js";
import type * as TS from "typescript";
import { formatFindings, type Finding } from "../../generator/diagnostics.js";
import { GENERATED_FILE } from "../../generator/compiler-options.js";
import { check, generate, KEY_FILE, type CheckRequest } from "../../generator/pipeline.js";
import { SCRIPT_ENV_FILE } from "../../generator/script-env.js";

/** The repository (this file is dist/test/generator/helpers.js). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const CLI = join(ROOT, "dist", "generator", "cli.js");
/** The installed command (package.json's bin): a shell script that starts Node from the check's snapshot itself. */
export const LAUNCHER = join(ROOT, "bin", "nixos-test-ts");

const node = (units: string[], tcp: number[], extra: Record<string, unknown> = {}) => ({
  vlans: [1],
  units,
  ports: { tcp, udp: [] as number[] },
  ...extra,
});

/** Two nodes like examples/two-nodes, written inline so a test shows what it relies on. */
export const TWO_NODES: ManifestJson = {
  name: "two-nodes",
  vlans: [1],
  nodes: {
    server: node(["multi-user.target", "sshd.service", "nginx.service", "getty@.service"], [22, 80], { addresses: { "1": "192.168.1.2" } }),
    client: node(["multi-user.target", "sshd.service", "getty@.service"], [22], { addresses: { "1": "192.168.1.1" } }),
  },
};

export const ONE_NODE: ManifestJson = {
  name: "one-node",
  vlans: [1],
  nodes: { webserver: node(["multi-user.target", "nginx.service"], [80]) },
};

export interface TestDir {
  dir: string;
  manifest: string;
  script: string;
  out: string;
}

/**
 * A directory with manifest.json and test.ts (lines joined with \n, so line N is lines[N-1]). `generated`: the
 * generated module is already in `out`, made in this process, as after an earlier check of the same manifest: a
 * CLI check with `--out out` then reuses it (as when a user edits the script) instead of loading ts-morph in its
 * own process; for tests about the check, not about generating.
 */
export async function testDir(manifest: ManifestJson | Record<string, unknown>, lines: string[], options: { generated?: boolean } = {}): Promise<TestDir> {
  const dir = await mkdtemp(join(tmpdir(), "ntt-gen-"));
  const paths = { dir, manifest: join(dir, "manifest.json"), script: join(dir, "test.ts"), out: join(dir, "out") };
  await writeFile(paths.manifest, JSON.stringify(manifest, null, 2));
  await writeFile(paths.script, `${lines.join("\n")}\n`);
  if (options.generated) await seedGenerated(paths);
  return paths;
}

/** Out dirs this process generated a module into, by the manifest's text: the next test of that manifest copies it. */
const generatedFor = new Map<string, string>();

async function seedGenerated(paths: TestDir): Promise<void> {
  const manifest = await readFile(paths.manifest, "utf8");
  const from = generatedFor.get(manifest);
  if (from === undefined) {
    await generate({ manifestPath: paths.manifest, outDir: paths.out, script: paths.script, command: "nixos-test-ts generate" });
    generatedFor.set(manifest, paths.out);
    return;
  }
  // What reuse needs: the module and its key (which covers the manifest's bytes and the generator), and the env declarations.
  await mkdir(paths.out, { recursive: true });
  for (const file of [GENERATED_FILE, KEY_FILE, SCRIPT_ENV_FILE]) await copyFile(join(from, file), join(paths.out, file));
}

export interface Checked {
  findings: Finding[];
  errors: number;
  warnings: number;
  emitted: string | undefined;
  /** The findings as the CLI prints them, paths relative to the test's directory (`test.ts:3:7 …`). */
  printed: string;
  dir: TestDir;
}

/** generate + check + emit in this process. */
export async function checkScript(
  manifest: ManifestJson | Record<string, unknown>,
  lines: string[],
  options: Partial<Pick<CheckRequest, "strictPorts" | "skipLint" | "skipTypeCheck" | "nodeTypes">> = {},
): Promise<Checked> {
  const dir = await testDir(manifest, lines, { generated: true });
  const { result } = await check({ manifestPath: dir.manifest, outDir: dir.out, script: dir.script, command: "nixos-test-ts generate", ...options });
  return { ...result, printed: formatFindings(result.findings, dir.dir), dir };
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr as they came. */
  output: string;
  pid: number | undefined;
}

/**
 * Runs the nixos-test-ts command as installed (bin/nixos-test-ts), or with `viaNode` as `node dist/generator/cli.js`.
 * After `limit` seconds it is sent SIGTERM (it forwards that to a driver it started, which ends its VMs), and SIGKILL
 * 20 s later.
 */
export async function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; limit?: number; viaNode?: boolean; onOutput?: (output: string, pid: number) => void } = {},
): Promise<CliRun> {
  const [file, ...before] = options.viaNode ? [process.execPath, CLI] : [LAUNCHER];
  const child = spawn(file as string, [...before, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...(options.env ?? process.env), NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    output += chunk.toString();
    if (child.pid !== undefined) options.onOutput?.(output, child.pid);
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    output += chunk.toString();
    if (child.pid !== undefined) options.onOutput?.(output, child.pid);
  });
  const limit = (options.limit ?? 60) * 1000;
  let kill: NodeJS.Timeout | undefined;
  const term = setTimeout(() => {
    if (child.pid !== undefined) process.kill(child.pid, "SIGTERM");
    kill = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 20_000);
  }, limit);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("close", (c, s) => resolve([c, s])));
  clearTimeout(term);
  clearTimeout(kill);
  return { code, signal, stdout, stderr, output, pid: child.pid };
}

/** TypeScript's lib files, parsed once for every {@link tscProject} of this process. */
const libFiles = new Map<string, TS.SourceFile>();

/**
 * `tsc -p <project>` in this process: what tsc does with a tsconfig.json (parse it, make the program, report the
 * pre-emit diagnostics; exit status 2 with errors, as tsc's with noEmit), without a Node of its own that loads the
 * compiler and parses TypeScript's lib again for each project (~1.5 s of CPU).
 */
export function tscProject(project: string): { status: number; output: string } {
  const ts = createRequire(import.meta.url)("typescript") as typeof TS;
  const config = statSync(project).isDirectory() ? join(project, "tsconfig.json") : project;
  const problems: TS.Diagnostic[] = [];
  const parsed = ts.getParsedCommandLineOfConfigFile(config, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => problems.push(d) });
  if (parsed === undefined) return { status: 1, output: ts.formatDiagnostics(problems, formatHost(ts)) };
  const host = ts.createCompilerHost(parsed.options);
  host.jsDocParsingMode = ts.JSDocParsingMode.ParseForTypeErrors; // as tsc
  const { getSourceFile } = host;
  const libDir = dirname(ts.getDefaultLibFilePath(parsed.options));
  host.getSourceFile = (fileName, languageVersion, ...rest) => {
    if (dirname(fileName) !== libDir) return getSourceFile.call(host, fileName, languageVersion, ...rest);
    let file = libFiles.get(fileName);
    if (file === undefined) libFiles.set(fileName, (file = getSourceFile.call(host, fileName, languageVersion, ...rest) as TS.SourceFile));
    return file;
  };
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options, host });
  const diagnostics = [...parsed.errors, ...ts.getPreEmitDiagnostics(program)];
  return { status: diagnostics.length === 0 ? 0 : 2, output: ts.formatDiagnostics(diagnostics, formatHost(ts)) };
}

function formatHost(ts: typeof TS): TS.FormatDiagnosticsHost {
  return { getCanonicalFileName: (f) => f, getCurrentDirectory: () => process.cwd(), getNewLine: () => "\n" };
}

/**
 * The CLI's commands run in this process (generator/commands.ts `main`): the same exit status and messages as
 * the command, without a Node of its own per call (~0.5 s of CPU each, the generated module and TypeScript's lib
 * made again in each). `cwd` is entered for the call; stderr is captured; process.exitCode is left as it was.
 * For the commands' own behaviour; tests of the process (start, snapshot, signals) use {@link runCli}.
 */
export async function runCliInProcess(args: string[], options: { cwd: string }): Promise<{ code: number; stderr: string }> {
  const { main } = await import("../../generator/commands.js");
  const saved = { cwd: process.cwd(), write: process.stderr.write, exitCode: process.exitCode };
  let stderr = "";
  process.exitCode = undefined;
  process.chdir(options.cwd);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(args), stderr };
  } finally {
    process.stderr.write = saved.write;
    process.chdir(saved.cwd);
    process.exitCode = saved.exitCode;
  }
}
