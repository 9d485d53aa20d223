/**
 * The entry of the check's V8 startup snapshot (`node --build-snapshot`; see
 * snapshot.ts, which builds it). It runs once, at build time, and leaves in
 * the heap what every check would otherwise spend ~0.8 s on: the TypeScript
 * compiler, evaluated, and the standard library's and the runtime's
 * declaration files, parsed and bound. A process started from the snapshot
 * runs the script named on its command line (the CLI) as usual; check.ts
 * finds the two on globalThis and serves the files to its program when their
 * text on disk is still the same.
 *
 * Node 20 lets a snapshot entry `require` only built-in modules, so the
 * compiler (CommonJS) is read and evaluated by hand. This file is CommonJS
 * and imports nothing of ours: snapshot.ts passes it what it needs in a JSON
 * spec (argv[2]).
 */
import fs = require("node:fs");
import path = require("node:path");
import v8 = require("node:v8");
import nodeModule = require("node:module");
import type * as TS from "typescript";

/** What snapshot.ts writes for this entry. */
interface Spec {
  /** typescript/lib/typescript.js */
  typescript: string;
  /** The check's compiler options, as tsconfig.json spells them. */
  options: Record<string, unknown>;
  /** Where the stand-in root file pretends to be (the declarations it imports are what gets cached). */
  root: string;
  rootText: string;
  /** Compared by check.ts with the options of the check at hand. */
  key: string;
  /** A small test (script, generated module, env declarations) checked and emitted once, in memory. */
  warmUp: { dir: string; files: Record<string, string> };
}

/** What check.ts reads from globalThis. */
interface Snapshot {
  ts: typeof TS;
  key: string;
  files: Map<string, TS.SourceFile>;
}

const spec = JSON.parse(fs.readFileSync(process.argv[2] as string, "utf8")) as Spec;

function loadTypeScript(file: string): typeof TS {
  const module = { exports: {} as typeof TS };
  // The compiler is one CommonJS file whose requires are all built-ins (fs, path, os, crypto, …): this require serves them.
  const evaluate = new Function("module", "exports", "require", "__filename", "__dirname", fs.readFileSync(file, "utf8"));
  evaluate(module, module.exports, require, file, path.dirname(file));
  return module.exports;
}

const ts = loadTypeScript(spec.typescript);
const converted = ts.convertCompilerOptionsFromJson(spec.options, path.dirname(spec.root));
if (converted.errors.length > 0) throw new Error(ts.flattenDiagnosticMessageText(converted.errors[0]?.messageText, "\n"));
const options: TS.CompilerOptions = { ...converted.options, noEmit: true };
// As check.ts makes its host (parent pointers set, JSDoc only where it can make a type error), so the files are the
// same objects it would have parsed.
const host = ts.createCompilerHost(options, true);
host.jsDocParsingMode = ts.JSDocParsingMode.ParseForTypeErrors;
const { getSourceFile } = host;
host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) =>
  fileName === spec.root
    ? ts.createSourceFile(fileName, spec.rootText, languageVersion, true)
    : getSourceFile.call(host, fileName, languageVersion, onError, shouldCreate);
const program = ts.createProgram({ rootNames: [spec.root], options, host });
// The checker binds every file (symbols, flow nodes); a later program finds them bound and does not bind them again.
program.getTypeChecker();
const files = new Map<string, TS.SourceFile>();
for (const file of program.getSourceFiles()) {
  if (file.fileName !== spec.root && file.isDeclarationFile) files.set(file.fileName, file);
}
/**
 * One check of a small test, thrown away: V8 keeps the bytecode of the functions it ran in the snapshot, so a
 * check started from it does not compile the checker's and the emitter's hot paths again (~0.2 s of CPU).
 */
function warmUp(): void {
  const virtual = new Map(Object.entries(spec.warmUp.files).map(([name, text]) => [path.join(spec.warmUp.dir, name), text]));
  const warm = ts.createCompilerHost(options, true);
  warm.jsDocParsingMode = ts.JSDocParsingMode.ParseForTypeErrors;
  const { getSourceFile: read, fileExists } = warm;
  warm.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    const text = virtual.get(fileName);
    if (text !== undefined) return ts.createSourceFile(fileName, text, languageVersion, true);
    return files.get(fileName) ?? read.call(warm, fileName, languageVersion, onError, shouldCreate);
  };
  warm.fileExists = (fileName) => virtual.has(fileName) || fileExists.call(warm, fileName);
  const outDir = path.join(spec.warmUp.dir, "out");
  const checked = ts.createProgram({ rootNames: [...virtual.keys()], options: { ...options, noEmit: false, outDir, sourceMap: true }, host: warm });
  const diagnostics = [...checked.getSyntacticDiagnostics(), ...checked.getGlobalDiagnostics(), ...checked.getSemanticDiagnostics()];
  // A warm-up test that no longer checks (the runtime's API changed) would warm the error paths instead: say so.
  if (diagnostics.length > 0) {
    throw new Error(
      `the warm-up test (generator/snapshot.ts) does not check:\n${diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")).join("\n")}`,
    );
  }
  checked.emit(undefined, () => undefined);
}
warmUp();

const snapshot: Snapshot = { ts, key: spec.key, files };
(globalThis as { __nixosTestTsSnapshot?: Snapshot }).__nixosTestTsSnapshot = snapshot;

// Started from the snapshot, run the script named on the command line (the CLI, an ES module) as `node script` would.
v8.startupSnapshot.setDeserializeMainFunction(() => {
  (nodeModule as unknown as { runMain(): void }).runMain();
});
