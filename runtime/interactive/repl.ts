import { createRequire } from "node:module";
import { join } from "node:path";
import repl, { type REPLServer } from "node:repl";
import { shellQuote } from "../../lib/shell.js";
import type { Driver } from "../driver/driver.js";
import { describeFailure } from "../report/failure.js";
import type { Machine } from "../machine/index.js";

export interface ReplOptions {
  /** Runs the test script (again); `runTests()` in the REPL. */
  runTests: () => Promise<void>;
  /** Where history persists; default `.nixos-test-history` in the current directory, as nixpkgs. */
  historyFile?: string;
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
  /** Extra dot-commands (pause on failure adds .retry, .continue, .abort). */
  commands?: Record<string, { help: string; action: (this: REPLServer, arg: string) => void }>;
  banner?: string;
  /** Each machine's systemd units (from the test's manifest), offered when completing a unit argument. */
  units?: Record<string, string[]>;
}

/** Methods whose first argument is a unit. */
const UNIT_METHODS = "waitForUnit|waitForJob|getUnitInfo|getUnitProperty|requireUnitState|startJob|stopJob";

/**
 * Completes `machine.waitForUnit("ss` from the machine's units; everything
 * else is left to the REPL's own completer (names in scope, methods).
 */
export function completeUnit(line: string, units: Record<string, string[]>): [string[], string] | undefined {
  const m = new RegExp(`(?:^|[^\\w$.])([A-Za-z_$][\\w$]*)\\.(?:${UNIT_METHODS})\\(\\s*(["'\`])([^"'\`]*)$`).exec(line);
  if (m === null) return undefined;
  const known = units[m[1] as string];
  if (known === undefined) return undefined;
  const prefix = m[3] as string;
  // Template units complete to their stem: `getty@` then the instance is the user's.
  const names = known.map((u) => u.replace(/@\.(\w+)$/, "@"));
  return [[...new Set(names.filter((u) => u.startsWith(prefix)))], prefix];
}

/**
 * The interactive driver: a Node REPL with top-level await, the test's
 * symbols in scope, TypeScript annotations accepted, persistent history,
 * `.shell <machine>`, and Ctrl-C that cancels the running command instead of
 * leaving. Resolves when the user leaves (.exit or Ctrl-D).
 */
export async function startRepl(driver: Driver, options: ReplOptions): Promise<void> {
  const output = options.output ?? process.stdout;
  // Everything is set up before the first prompt appears: input typed at it must find its commands. What the
  // driver logged so far (the terminal writes once per turn of the event loop) comes before the banner and prompt.
  driver.logger.flush();
  if (options.banner !== undefined) output.write(`${options.banner}\n`);
  const server = repl.start({
    prompt: "> ",
    input: options.input ?? process.stdin,
    output,
    useGlobal: false,
    breakEvalOnSigint: true,
    preview: false,
    ignoreUndefined: true,
    terminal: (output as { isTTY?: boolean }).isTTY === true,
  });
  // runTests() and testScript() (nixpkgs: run_tests, test_script) both play the script.
  Object.assign(server.context, driver.testSymbols(), { runTests: options.runTests, testScript: options.runTests });

  const mutable = server as unknown as { eval: repl.REPLEval };
  const evaluate = server.eval.bind(server);
  mutable.eval = (code, context, file, callback) => evaluate(stripTypes(code), context, file, callback);
  if (options.units !== undefined) {
    const units = options.units;
    const mutableCompleter = server as unknown as { completer: (line: string, cb: (err: Error | null, result: [string[], string]) => void) => void };
    const original = mutableCompleter.completer.bind(server);
    mutableCompleter.completer = (line, cb) => {
      const unitCompletion = completeUnit(line, units);
      if (unitCompletion !== undefined) cb(null, unitCompletion);
      else original(line, cb);
    };
  }
  // Ctrl-C while a command runs: break the await (breakEvalOnSigint) and cancel the command in the VM.
  server.on("SIGINT", () => driver.interrupt());

  server.defineCommand("shell", {
    help: "Run commands in a machine's root shell (.shell <machine>; `exit` returns)",
    action(name: string) {
      const machine = driver.machines[name.trim()];
      if (machine === undefined) {
        output.write(`no machine named ${JSON.stringify(name.trim())}; machines: ${Object.keys(driver.machines).join(", ")}\n`);
        this.displayPrompt();
        return;
      }
      shellMode(server, mutable, machine, output);
    },
  });
  for (const [name, command] of Object.entries(options.commands ?? {})) server.defineCommand(name, command);

  const history = options.historyFile ?? process.env.NIXOS_TEST_HISTORY ?? join(process.cwd(), ".nixos-test-history");
  await new Promise<void>((resolve) => server.setupHistory(history, () => resolve()));
  await new Promise<void>((resolve) => server.once("exit", resolve));
}

/**
 * A line-oriented root shell over the backdoor: while it is on, each input
 * line runs with `execute` (output, exit codes and timeouts as in tests)
 * instead of being evaluated, and `cd` is remembered between lines.
 */
function shellMode(server: REPLServer, mutable: { eval: repl.REPLEval }, machine: Machine, output: NodeJS.WritableStream): void {
  let cwd = "/root";
  const evaluate = mutable.eval;
  const prompt = server.getPrompt();
  const leave = (): void => {
    mutable.eval = evaluate;
    server.setPrompt(prompt);
  };
  const run = async (line: string): Promise<void> => {
    const quoted = shellQuote(cwd);
    if (/^cd(\s|$)/.test(line)) {
      const r = await machine.execute(`cd ${quoted} && ${line} && pwd`, { timeout: 30 });
      if (r.exitCode === 0) cwd = r.output.trim();
      else output.write(`cd failed (exit ${r.exitCode})\n`);
    } else {
      const r = await machine.execute(`cd ${quoted} && ${line} 2>&1`);
      output.write(r.output);
      if (r.exitCode !== 0) output.write(`[exit ${r.exitCode}${r.timedOut ? ", timed out" : ""}]\n`);
    }
    server.setPrompt(`${machine.name}:${cwd}# `);
  };
  mutable.eval = (code, _context, _file, callback) => {
    const line = code.trim();
    if (line === "exit" || line === "logout") {
      leave();
      callback(null, undefined);
      return;
    }
    run(line).then(
      () => callback(null, undefined),
      (error: unknown) => {
        output.write(`${describeFailure(error)}\n`);
        callback(null, undefined);
      },
    );
  };
  output.write(`root shell on ${machine.name} (each line runs with execute; \`exit\` returns to the REPL)\n`);
  server.setPrompt(`${machine.name}:${cwd}# `);
  server.displayPrompt();
}

type TS = typeof import("typescript");

let typescript: TS | null | undefined;

/**
 * TypeScript, required (not imported: Node's ES module loader would scan the 9 MB compiler for named exports
 * first) on the first input that looks typed: most sessions never need it. null: not installed, JavaScript only.
 */
function loadTypeScript(): TS | null {
  if (typescript === undefined) {
    try {
      typescript = createRequire(import.meta.url)("typescript") as TS;
    } catch {
      typescript = null;
    }
  }
  return typescript;
}

/** Drops TypeScript annotations from one REPL input; anything that fails to transpile is passed on as typed. */
function stripTypes(code: string): string {
  if (!/[:<]|\bas\b|\binterface\b|\btype\b/.test(code)) return code;
  const ts = loadTypeScript();
  if (ts === null) return code;
  const out = ts.transpileModule(code, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, removeComments: false },
    reportDiagnostics: true,
  });
  if ((out.diagnostics ?? []).length > 0) return code;
  // The REPL wants an expression's value: keep the input's shape, minus `export {}` noise.
  const js = out.outputText.replace(/^export \{\};\s*$/m, "").trim();
  return code.endsWith("\n") ? `${js}\n` : js;
}
