/**
 * The build-time check: one TypeScript program per test (the user's script,
 * the generated module, the runtime's declarations), type-checked, linted and
 * emitted as ES modules with source maps. It never starts a VM.
 *
 * The generated module is served from memory as if it sat next to the user's
 * script, so `import … from "./test.generated.js"` resolves and both emit
 * side by side; the user's file is read from disk unchanged, so every line
 * and column in a finding is the user's own.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import type * as TS from "typescript";
import type { Manifest } from "../lib/manifest.js";
import { fromTypeScript, type Finding } from "./diagnostics.js";
import { GENERATED_FILE, tsconfigOptions } from "./compiler-options.js";
import { lint } from "./lint.js";
import { SCRIPT_ENV, SCRIPT_ENV_FILE } from "./script-env.js";
import { currentSnapshot, optionsKey } from "./snapshot.js";

// From the startup snapshot when this process was started from one (the compiler is then already loaded).
// Else require, not import: Node's ES module loader would first scan the 9 MB compiler for its
// named exports, which costs more than loading it (≈ 280 ms instead of ≈ 110 ms).
const snapshot = currentSnapshot();
const ts = snapshot?.ts ?? (createRequire(import.meta.url)("typescript") as typeof TS);

/**
 * Declaration files (TypeScript's lib, the runtime's, @types/node), parsed and bound, by the compiler options they
 * were made with: the startup snapshot's, and every one a check in this process has parsed. A program may share
 * them, as a language service shares files between programs: the binder skips a bound file, and the checker
 * copies a symbol before it merges into it. A file is taken only while its text on disk is still the same.
 */
const declarations = new Map<string, Map<string, TS.SourceFile>>(snapshot === undefined ? [] : [[snapshot.key, new Map(snapshot.files)]]);

function declarationsFor(key: string): Map<string, TS.SourceFile> {
  let files = declarations.get(key);
  if (files === undefined) declarations.set(key, (files = new Map()));
  return files;
}

function reusable(cached: TS.SourceFile | undefined, fileName: string, languageVersion: TS.ScriptTarget | TS.CreateSourceFileOptions): cached is TS.SourceFile {
  if (cached === undefined) return false;
  const wanted = typeof languageVersion === "object" ? languageVersion : { languageVersion };
  if (cached.languageVersion !== wanted.languageVersion || cached.impliedNodeFormat !== wanted.impliedNodeFormat) return false;
  try {
    return readFileSync(fileName, "utf8") === cached.text;
  } catch {
    return false;
  }
}

export interface CheckOptions {
  manifest: Manifest;
  /** The text of test.generated.ts. */
  generated: string;
  /** The user's script. */
  script: string;
  /** Where the JS goes; also where diagnostics say the generated module is. */
  outDir: string;
  strictPorts?: boolean;
  skipTypeCheck?: boolean;
  skipLint?: boolean;
  /** Type Node's globals and built-in modules with @types/node (slower) instead of the small built-in shim. */
  nodeTypes?: boolean;
  /** Write JS (default true). Nothing is written when there is an error. */
  emit?: boolean;
}

export interface CheckTimings {
  program: number;
  typeCheck: number;
  lint: number;
  emit: number;
}

export interface CheckResult {
  findings: Finding[];
  errors: number;
  warnings: number;
  /** The emitted entry script, when emitted. */
  emitted: string | undefined;
  timings: CheckTimings;
  /** Declaration files the program took parsed and bound from the startup snapshot or an earlier check in this process. */
  reusedDeclarations: number;
  /** The generated module was neither checked nor emitted: an earlier check of this out dir did both, with the same inputs. */
  generatedSettled: boolean;
}

export function check(options: CheckOptions): CheckResult {
  const timings: CheckTimings = { program: 0, typeCheck: 0, lint: 0, emit: 0 };
  let mark = performance.now();
  const lap = (key: keyof CheckTimings): void => {
    const now = performance.now();
    timings[key] += now - mark;
    mark = now;
  };

  const script = resolve(options.script);
  const outDir = resolve(options.outDir);
  const generatedPath = join(dirname(script), GENERATED_FILE);
  const envPath = join(outDir, SCRIPT_ENV_FILE);
  const virtual = new Map<string, string>([[generatedPath, options.generated]]);
  if (!options.nodeTypes) virtual.set(envPath, SCRIPT_ENV);
  const rename = (file: string): string => (file === generatedPath ? join(outDir, GENERATED_FILE) : file);

  const findings: Finding[] = [];
  const converted = ts.convertCompilerOptionsFromJson(tsconfigOptions(options), dirname(script));
  findings.push(...fromTypeScript(ts, converted.errors));
  // noEmitOnError stays off: it would type-check again in emit() (also under skipTypeCheck); we gate the emit ourselves.
  const compilerOptions: TS.CompilerOptions = { ...converted.options, outDir, sourceMap: true, noEmitOnError: false };
  if (options.nodeTypes && compilerOptions.typeRoots === undefined) {
    findings.push({
      severity: "error",
      code: "NTT_NODE_TYPES",
      message: "--node-types: @types/node is not installed where nixos-test-ts can find it (npm install @types/node)",
    });
  }

  const host = ts.createCompilerHost(compilerOptions, true);
  // As tsc: JSDoc is parsed only where it can make a type error (JavaScript); TypeScript's lib is mostly JSDoc
  // (~0.1 s less to parse it). The snapshot's files are parsed alike (snapshot-entry.cts).
  host.jsDocParsingMode = ts.JSDocParsingMode.ParseForTypeErrors;
  const { getSourceFile, fileExists, readFile } = host;
  const known = declarationsFor(optionsKey(options));
  let reusedDeclarations = 0;
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const text = virtual.get(fileName);
    if (text !== undefined) return ts.createSourceFile(fileName, text, languageVersion, true);
    const cached = known.get(fileName);
    if (reusable(cached, fileName, languageVersion)) {
      reusedDeclarations++;
      return cached;
    }
    const file = getSourceFile.call(host, fileName, languageVersion, onError, shouldCreate);
    if (file?.isDeclarationFile) known.set(fileName, file);
    else known.delete(fileName);
    return file;
  };
  host.fileExists = (fileName) => virtual.has(fileName) || fileExists.call(host, fileName);
  host.readFile = (fileName) => virtual.get(fileName) ?? readFile.call(host, fileName);

  const program = ts.createProgram({ rootNames: [script, generatedPath, ...(options.nodeTypes ? [] : [envPath])], options: compilerOptions, host });
  if (program.getSourceFile(script) === undefined) {
    findings.push({ severity: "error", code: "NTT_SCRIPT", message: `cannot read the test script ${script}` });
  }
  findings.push(...fromTypeScript(ts, [...program.getOptionsDiagnostics(), ...program.getSyntacticDiagnostics()], rename));
  lap("program");

  // The generated module as an earlier check of this out dir checked and emitted it: its diagnostics and JS are known.
  const stamp = generatedStamp(program, generatedPath, outDir);
  const settled = stamp.matches;
  if (!options.skipTypeCheck) {
    const semantic = program.getSourceFiles().flatMap((f) => (settled && f.fileName === generatedPath ? [] : program.getSemanticDiagnostics(f)));
    findings.push(...fromTypeScript(ts, [...program.getGlobalDiagnostics(), ...semantic], rename).map(hint));
  }
  lap("typeCheck");

  if (!options.skipLint) {
    const files = program.getSourceFiles().filter((f) => !f.isDeclarationFile && f.fileName !== generatedPath && !f.fileName.includes("/node_modules/"));
    findings.push(
      ...lint(ts, program.getTypeChecker(), files, { manifest: options.manifest, strictPorts: options.strictPorts === true || options.manifest.strictPorts }),
    );
  }
  lap("lint");

  dropExplained(findings);
  const errors = findings.filter((f) => f.severity === "error").length;
  let emitted: string | undefined;
  if (errors === 0 && options.emit !== false) {
    emitted = emit(program, host, script, outDir, findings, settled ? generatedPath : undefined);
    if (!settled && !options.skipTypeCheck && findings.every((f) => f.severity !== "error")) stamp.save();
  }
  lap("emit");
  return {
    findings,
    errors: findings.filter((f) => f.severity === "error").length,
    warnings: findings.filter((f) => f.severity === "warning").length,
    emitted,
    timings,
    reusedDeclarations,
    generatedSettled: settled,
  };
}

/**
 * Where a check records that the generated module passed the type check and its JS is in the out dir: a hash of
 * what its diagnostics depend on (TypeScript's version, the options, its text, every declaration file but
 * TypeScript's lib) and of the JS written. A later check of another script against the same module skips the
 * module's own diagnostics and emit (with 20 nodes, ~0.1 s); anything else that differs checks it again.
 */
const STAMP_FILE = ".test.generated.checked";
const GENERATED_JS = [`${basename(GENERATED_FILE, ".ts")}.js`, `${basename(GENERATED_FILE, ".ts")}.js.map`];

function generatedStamp(program: TS.Program, generatedPath: string, outDir: string): { matches: boolean; save(): void } {
  const inputs = createHash("sha256").update(`${ts.version}\n${JSON.stringify(program.getCompilerOptions())}\n`);
  for (const file of program.getSourceFiles()) {
    if (file.fileName === generatedPath || (file.isDeclarationFile && !program.isSourceFileDefaultLibrary(file))) {
      inputs.update(`${file.fileName}\n${file.text.length}\n`).update(file.text);
    }
  }
  const digest = inputs.digest("hex");
  const path = join(outDir, STAMP_FILE);
  const written = (): string | undefined => {
    try {
      return [
        digest,
        ...GENERATED_JS.map((name) =>
          createHash("sha256")
            .update(readFileSync(join(outDir, name)))
            .digest("hex"),
        ),
      ].join(" ");
    } catch {
      return undefined;
    }
  };
  let matches = false;
  try {
    const recorded = readFileSync(path, "utf8").trim();
    matches = recorded.startsWith(`${digest} `) && recorded === written();
  } catch {
    // Never checked here.
  }
  return {
    matches,
    save: () => {
      const line = written();
      if (line !== undefined) writeFileSync(path, `${line}\n`);
    },
  };
}

/** Writes the JS and source maps (all but `skip`, whose JS is already there); returns the entry script's JS. */
function emit(program: TS.Program, host: TS.CompilerHost, script: string, outDir: string, findings: Finding[], skip?: string): string | undefined {
  let emitted: string | undefined;
  const entry = program.getSourceFile(script);
  // The entry imports the generated module first: it binds what the runtime may not inject as globals.
  const importGenerated: TS.TransformerFactory<TS.SourceFile> = (context) => (file) => {
    if (file !== entry) return file;
    const f = context.factory;
    const specifier = `./${basename(GENERATED_FILE, ".ts")}.js`;
    return f.updateSourceFile(file, [f.createImportDeclaration(undefined, undefined, f.createStringLiteral(specifier)), ...file.statements]);
  };
  mkdirSync(outDir, { recursive: true });
  const write: TS.WriteFileCallback = (fileName, text, bom, onError, sources) => {
    host.writeFile(fileName, text, bom, onError, sources);
    if (fileName.endsWith(".js") && sources?.some((s) => s.fileName === script)) emitted = fileName;
  };
  // What a whole emit writes (no declaration files, nothing from node_modules), less `skip`.
  const targets =
    skip === undefined
      ? [undefined]
      : program.getSourceFiles().filter((f) => !f.isDeclarationFile && !program.isSourceFileFromExternalLibrary(f) && f.fileName !== skip);
  for (const target of targets) {
    const result = program.emit(target, write, undefined, false, { before: [importGenerated] });
    findings.push(...fromTypeScript(ts, result.diagnostics));
  }
  // Node must treat the emitted .js as ES modules, wherever the out dir is.
  writeFileSync(join(outDir, "package.json"), `${JSON.stringify({ type: "module" }, null, 2)}\n`);
  return emitted;
}

/**
 * A unit the node lacks is reported twice: by TypeScript ("not assignable to
 * ServerUnits | RuntimeUnit") and by the lint, which names the nearest units
 * and the node that has it. The lint's finding stays.
 */
function dropExplained(findings: Finding[]): void {
  const at = (f: Finding): string => `${f.location?.file}:${f.location?.line}:${f.location?.column}`;
  const explained = new Set(findings.filter((f) => f.code === "lint/unknown-unit").map(at));
  for (let i = findings.length - 1; i >= 0; i--) {
    const f = findings[i] as Finding;
    if (f.code === "TS2345" && explained.has(at(f))) findings.splice(i, 1);
  }
}

/** Adds the fix to errors whose fix is ours to tell. */
function hint(finding: Finding): Finding {
  // Without --node-types the shim declares node:* (as any), so this happens only with it.
  if (finding.code === "TS2307" && finding.message.includes("'node:")) {
    return { ...finding, message: `${finding.message}\n(--node-types needs @types/node next to nixos-test-ts)` };
  }
  return finding;
}
