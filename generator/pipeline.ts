/**
 * generate → write → check → emit, as the CLI, the tests and the bench run
 * it. The compilers are imported here, lazily, so that their load time is
 * measured and `generate` never loads the type checker.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { ConfigError } from "../lib/errors.js";
import { readManifest, type Manifest } from "../lib/manifest.js";
import type { CheckResult } from "./check.js";
import { GENERATED_FILE, tsconfigOptions } from "./compiler-options.js";
import { SCRIPT_ENV, SCRIPT_ENV_FILE } from "./script-env.js";

export interface GenerateRequest {
  manifestPath: string;
  /** Where test.generated.ts, the env declarations and tsconfig.json go. */
  outDir: string;
  /** The user's script, if known: the tsconfig written then checks it. */
  script?: string;
  /** For the header: how to regenerate. */
  command: string;
  nodeTypes?: boolean;
}

export interface CheckRequest extends GenerateRequest {
  script: string;
  strictPorts?: boolean;
  skipTypeCheck?: boolean;
  skipLint?: boolean;
  emit?: boolean;
}

/** Milliseconds per phase, for `--timings` and the bench. */
export interface Timings {
  manifest: number;
  importGenerator: number;
  generate: number;
  importCompiler: number;
  program: number;
  typeCheck: number;
  lint: number;
  emit: number;
}

export interface Generated {
  manifest: Manifest;
  text: string;
  file: string;
}

const TSCONFIG_MARKER = "// written by nixos-test-ts";

function stopwatch(): () => number {
  let last = performance.now();
  return () => {
    const now = performance.now();
    const ms = now - last;
    last = now;
    return ms;
  };
}

/**
 * Reads the manifest and generates the module's text. ts-morph (a second
 * TypeScript compiler, ~0.5 s to load) is loaded only when the module in
 * `reuseDir` is not already the one this manifest and this generator make:
 * editing only the script, or a Nix build whose generation was a derivation
 * of its own, skips it.
 */
async function generateText(
  request: GenerateRequest,
  timings: Partial<Timings>,
  reuseDir?: string,
): Promise<{ manifest: Manifest; text: string; key: string }> {
  const lap = stopwatch();
  const manifest = await readManifest(request.manifestPath);
  timings.manifest = lap();
  const key = generationKey(request);
  const cached = reuseDir === undefined ? undefined : readCachedModule(reuseDir, key);
  if (cached !== undefined) {
    timings.importGenerator = 0;
    timings.generate = lap();
    return { manifest, text: cached, key };
  }
  const { generateModule } = await import("./generate.js");
  timings.importGenerator = lap();
  const text = generateModule(manifest, { manifestPath: request.manifestPath, command: request.command });
  timings.generate = lap();
  return { manifest, text, key };
}

/** Where the key of the module next to it is kept: what made it, and a hash of it (an edited module is not reused). */
const KEY_FILE = ".test.generated.key";
const GENERATOR_FILES = ["./generate.js", "./typing.js", "../lib/manifest.js", "../lib/names.js"];

const sha256 = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");

/** The manifest's bytes, the header's command and the generator's own code: what the module's text depends on. */
function generationKey(request: GenerateRequest): string {
  const hash = createHash("sha256").update(readFileSync(request.manifestPath)).update(`\0${request.command}\0`);
  for (const file of GENERATOR_FILES) hash.update(readFileSync(new URL(file, import.meta.url)));
  return hash.digest("hex");
}

function readCachedModule(dir: string, key: string): string | undefined {
  try {
    const [storedKey, textHash] = readFileSync(join(dir, KEY_FILE), "utf8").trim().split(" ");
    if (storedKey !== key) return undefined;
    const text = readFileSync(join(dir, GENERATED_FILE), "utf8");
    return sha256(text) === textHash ? text : undefined;
  } catch {
    return undefined;
  }
}

/** `nixos-test-ts generate`: test.generated.ts, the env declarations and a tsconfig.json in the out dir. */
export async function generate(request: GenerateRequest, timings: Partial<Timings> = {}): Promise<Generated> {
  const outDir = resolve(request.outDir);
  const { manifest, text, key } = await generateText(request, timings, outDir);
  const file = writeModule(outDir, text, request.nodeTypes ?? false);
  writeFileSync(join(outDir, KEY_FILE), `${key} ${sha256(text)}\n`);
  const script = request.script === undefined ? undefined : resolve(request.script);
  writeTsconfig(outDir, tsconfigOptions(request), {
    files: [...(script === undefined ? [] : [script]), ...moduleFiles(request.nodeTypes ?? false)],
    // The script imports "./test.generated.js" from its own directory: let that find this one.
    ...(script === undefined ? {} : { rootDirs: [dirname(script), outDir] }),
  });
  return { manifest, text, file };
}

function moduleFiles(nodeTypes: boolean): string[] {
  return [GENERATED_FILE, ...(nodeTypes ? [] : [SCRIPT_ENV_FILE])];
}

function writeModule(dir: string, text: string, nodeTypes: boolean): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, GENERATED_FILE);
  writeFileSync(file, text);
  if (!nodeTypes) writeFileSync(join(dir, SCRIPT_ENV_FILE), SCRIPT_ENV);
  return file;
}

function writeTsconfig(dir: string, options: Record<string, unknown>, extra: { files: string[]; rootDirs?: string[] }): void {
  const config = {
    compilerOptions: { ...options, noEmit: true, ...(extra.rootDirs === undefined ? {} : { rootDirs: extra.rootDirs }) },
    files: extra.files,
  };
  writeFileSync(
    join(dir, "tsconfig.json"),
    `${TSCONFIG_MARKER}: type-checks the test script against test.generated.ts as \`nixos-test-ts check\` does.\n${JSON.stringify(config, null, 2)}\n`,
  );
}

/**
 * `nixos-test-ts typings`: the generated module, env declarations and a
 * tsconfig.json next to the user's script, so an editor completes machine
 * names, units and ports. A tsconfig.json the user wrote is left alone.
 */
export async function typings(request: GenerateRequest & { script: string }): Promise<{ files: string[]; tsconfigKept: boolean }> {
  const { text } = await generateText(request, {});
  const script = resolve(request.script);
  const dir = dirname(script);
  const files = [writeModule(dir, text, request.nodeTypes ?? false)];
  if (!(request.nodeTypes ?? false)) files.push(join(dir, SCRIPT_ENV_FILE));
  const tsconfig = join(dir, "tsconfig.json");
  const tsconfigKept = existsSync(tsconfig) && !readFileSync(tsconfig, "utf8").startsWith(TSCONFIG_MARKER);
  if (!tsconfigKept) {
    writeTsconfig(dir, tsconfigOptions(request), { files: [basename(script), ...moduleFiles(request.nodeTypes ?? false)] });
    files.push(tsconfig);
  }
  return { files, tsconfigKept };
}

/** `nixos-test-ts check`: generate, type-check, lint and emit into the out dir. */
export async function check(request: CheckRequest): Promise<{ result: CheckResult; timings: Timings; manifest: Manifest }> {
  const timings: Partial<Timings> = {};
  if (!existsSync(request.script)) throw new ConfigError(`test script not found: ${request.script}`);
  const generated = await generate(request, timings);
  const lap = stopwatch();
  const checker = await import("./check.js");
  timings.importCompiler = lap();
  const result = checker.check({
    manifest: generated.manifest,
    generated: generated.text,
    script: request.script,
    outDir: request.outDir,
    ...(request.strictPorts ? { strictPorts: true } : {}),
    ...(request.skipTypeCheck === undefined ? {} : { skipTypeCheck: request.skipTypeCheck }),
    ...(request.skipLint === undefined ? {} : { skipLint: request.skipLint }),
    ...(request.nodeTypes === undefined ? {} : { nodeTypes: request.nodeTypes }),
    ...(request.emit === undefined ? {} : { emit: request.emit }),
  });
  return { result, timings: { ...(timings as Timings), ...result.timings }, manifest: generated.manifest };
}
