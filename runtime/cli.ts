#!/usr/bin/env node
import { accessSync, constants, mkdirSync, statSync } from "node:fs";
import { basename, resolve } from "node:path";
import { Command, Option } from "commander";
import { readDriverConfiguration, type DriverConfiguration, DEFAULT_GLOBAL_TIMEOUT } from "../lib/config.js";
import { machineNameFromStartScript } from "../lib/names.js";
import { readManifest, type Manifest } from "../lib/manifest.js";
import { ConfigError, NixosTestError, TestAbortedError } from "./errors.js";
import { Driver } from "./driver/driver.js";
import { describeFailure } from "./report/failure.js";
import { LOG_LEVELS, Logger, type LogLevel } from "./log/logger.js";
import { TerminalSink } from "./log/terminal.js";
import { XmlLogSink } from "./log/xml.js";
import { RecordSink } from "./log/record.js";
import { writeHtmlReport } from "./report/html.js";
import { writeJunit } from "./report/junit.js";
import { collectCases } from "./report/results.js";
import { checkHostTools } from "./host/preflight.js";
import { killAllSync } from "./host/reaper.js";
import { runTestScript } from "./script/run.js";
import { startRepl } from "./interactive/repl.js";
import type { ShellTestHooks } from "./machine/index.js";

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

interface Flags {
  config?: string;
  startScripts?: string[];
  containerStartScripts?: string[];
  vlans?: string[];
  globalTimeout?: string;
  keepVmState?: boolean;
  outputDirectory?: string;
  interactive?: boolean;
  junitXml?: string;
  logLevel?: string;
  stateDir?: string;
  testName?: string;
  pauseOnFailure?: boolean;
  manifest?: string;
}

function program(): Command {
  return new Command("nixos-test-driver")
    .description("Run a NixOS VM test script (nixos-test-ts). Flags and environment variables as nixpkgs' Python driver.")
    .argument("[testScript]", "the test script (an ES module); env: testScript")
    .addOption(new Option("-c, --config <file>", "driver configuration JSON, as nixpkgs writes it"))
    .addOption(new Option("--start-scripts <scripts...>", "run-<name>-vm start scripts").env("startScripts"))
    .addOption(new Option("--container-start-scripts <scripts...>", "run-<name>-nspawn start scripts (systemd-nspawn containers)").env("containerStartScripts"))
    .addOption(new Option("--vlans <vlans...>", "vlan numbers to create switches for").env("vlans"))
    .addOption(new Option("--global-timeout <seconds>", `time limit for the whole test (default ${DEFAULT_GLOBAL_TIMEOUT})`).env("globalTimeout"))
    .addOption(new Option("-K, --keep-vm-state", "reuse the VMs' state directories (disk images) instead of resetting them"))
    .addOption(new Option("--keep-machine-state").hideHelp())
    .addOption(new Option("-o, --output-directory <dir>", "where screenshots, copied files and log.xml go (default: current directory)"))
    .addOption(new Option("--output_directory <dir>").hideHelp())
    .addOption(new Option("-I, --interactive", "open a REPL instead of running the script (runTests() runs it)"))
    .addOption(new Option("--manifest <file>", "the test's manifest.json (the interactive driver completes each machine's units from it)"))
    .addOption(new Option("--pause-on-failure", "when a command or subtest fails, keep the VMs and open a REPL: .retry, .continue or .abort"))
    .addOption(new Option("--junit-xml <file>", "write a JUnit report (relative to the output directory)"))
    .addOption(new Option("--test-name <name>", "the test's name in reports (default: the script's file name)"))
    .addOption(new Option("--log-level <level>", "debug, info, warning or error").choices(LOG_LEVELS).env("logLevel"))
    .addOption(new Option("--state-dir <dir>", "parent of the vm-state-<name> directories (default: $XDG_RUNTIME_DIR or $TMPDIR)"))
    .showHelpAfterError();
}

/**
 * `--vlans 1 2 test.mjs`: the variadic flags swallow the test script that
 * follows them. A vlan is never a path and a start script never a .js/.ts
 * module, so such a last value is taken back as the test script.
 */
function reclaimTestScript(script: string | undefined, flags: Flags): string | undefined {
  if (script !== undefined) return script;
  const lastVlan = flags.vlans?.at(-1);
  if (lastVlan !== undefined && !/^\s*\d+(\s+\d+)*\s*$/.test(lastVlan)) return flags.vlans?.pop();
  for (const list of [flags.startScripts, flags.containerStartScripts]) {
    const lastScript = list?.at(-1);
    if (lastScript !== undefined && /\.(m?js|m?ts)$/.test(lastScript)) return list?.pop();
  }
  return undefined;
}

async function resolveConfiguration(positional: string | undefined, flags: Flags, warn: (message: string) => void): Promise<DriverConfiguration> {
  const script = reclaimTestScript(positional, flags);
  let config: DriverConfiguration;
  if (flags.config !== undefined) {
    config = await readDriverConfiguration(flags.config);
    // Before anything else can fail: an ignored key may be why.
    for (const warning of config.warnings) warn(warning);
  } else {
    const scripts = splitEnvList(flags.startScripts);
    const containerScripts = splitEnvList(flags.containerStartScripts);
    if (scripts.length === 0 && containerScripts.length === 0) {
      throw new ConfigError(
        "no machines: pass --config <driver-configuration.json>, --start-scripts <run-NAME-vm ...> or --container-start-scripts <run-NAME-nspawn ...> (or set startScripts)",
      );
    }
    config = {
      vms: scripts.map((s) => ({ name: machineNameFromStartScript(s), startScript: s })),
      containers: containerScripts.map((s) => ({ name: machineNameFromStartScript(s), startScript: s })),
      vlans: splitEnvList(flags.vlans).map((v) => parseVlan(v)),
      globalTimeout: DEFAULT_GLOBAL_TIMEOUT,
      testScript: "",
      warnings: [],
    };
  }
  if (flags.vlans !== undefined && flags.config !== undefined) config.vlans = splitEnvList(flags.vlans).map(parseVlan);
  if (flags.globalTimeout !== undefined) {
    const t = Number(flags.globalTimeout);
    if (!(t > 0)) throw new ConfigError(`--global-timeout must be a number of seconds > 0, got ${JSON.stringify(flags.globalTimeout)}`);
    config.globalTimeout = t;
  }
  const testScript = script ?? process.env.testScript ?? config.testScript;
  if (testScript === "") throw new ConfigError("no test script: pass its path as an argument (or set testScript, or test_script in --config)");
  config.testScript = testScript;
  const names = new Set<string>();
  for (const vm of [...config.vms, ...config.containers]) {
    // QEMU runs in the VM's state directory, so a relative path would point elsewhere.
    if (!/\s/.test(vm.startScript.trim())) vm.startScript = resolve(vm.startScript.trim());
    if (names.has(vm.name)) throw new ConfigError(`two start scripts are for a machine named ${JSON.stringify(vm.name)}`);
    names.add(vm.name);
    checkExecutable(vm.startScript, `start script of machine ${vm.name}`);
  }
  checkReadable(config.testScript, "test script");
  checkHostTools(config.vms, config.vlans, config.containers);
  return config;
}

/** nixpkgs passes lists in environment variables as one space-separated string. */
function splitEnvList(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(/\s+/)).filter((v) => v !== "");
}

function parseVlan(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--vlans: a vlan is a positive integer, got ${JSON.stringify(text)}`);
  return n;
}

function checkExecutable(command: string, what: string): void {
  const path = command.trim().split(/\s+/)[0] ?? "";
  try {
    if (!statSync(path).isFile()) throw new ConfigError(`${what} is not a file: ${path}`);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`${what} not found: ${path}`);
  }
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new ConfigError(`${what} is not executable: ${path} (chmod +x it, or check that it is the run-<name>-vm script of a built VM)`);
  }
}

function checkReadable(path: string, what: string): void {
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new ConfigError(`${what} not found or not readable: ${path}`);
  }
}

function outputDirectory(flags: Flags & { output_directory?: string }): string {
  const dir = resolve(flags.outputDirectory ?? flags.output_directory ?? process.cwd());
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (error) {
    throw new ConfigError(`output directory ${dir} is not a writable directory (${(error as Error).message})`);
  }
  return dir;
}

export async function main(argv: string[]): Promise<number> {
  // Test scripts compiled from TypeScript carry source maps: errors then point at the user's .ts lines.
  process.setSourceMapsEnabled(true);
  const cmd = program();
  cmd.parse(argv);
  const flags = cmd.opts<Flags & { output_directory?: string; keepMachineState?: boolean }>();
  const level = (flags.logLevel ?? "info") as LogLevel;
  const logger = new Logger([]);
  logger.addSink(new TerminalSink(process.stderr, { level, isSerialOn: () => logger.printSerial }));

  let driver: Driver | undefined;
  let exitCode = EXIT_FAILED;
  let failure: unknown;
  let reports: (() => void) | undefined;
  const began = performance.now();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (driver === undefined) process.exit(signal === "SIGINT" ? 130 : 143);
    if (driver.signal.aborted) {
      // A second signal: the user wants out now.
      killAllSync();
      logger.end();
      process.exit(signal === "SIGINT" ? 130 : 143);
    }
    exitCode = signal === "SIGINT" ? 130 : 143;
    logger.error(`received ${signal}; stopping the VMs...`);
    driver.abort(new TestAbortedError(`the test was interrupted by ${signal}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);
  process.on("exit", () => {
    killAllSync();
    logger.end();
  });
  let over = false;
  process.on("unhandledRejection", (reason) => {
    // After the end, stray rejections are the echo of our own cleanup.
    if (over) return;
    const error = reason instanceof Error ? reason : new Error(String(reason));
    logger.error(`a promise failed that nobody awaited (a missing \`await\`?):\n${describeFailure(error)}`);
    driver?.abort(error);
  });

  try {
    const config = await resolveConfiguration(cmd.args[0], flags, (message) => logger.warning(message));
    const outDir = outputDirectory(flags);
    const logFile = process.env.LOGFILE ?? resolve(outDir, "log.xml");
    logger.addSink(new XmlLogSink(logFile));
    const record = new RecordSink(outDir);
    logger.addSink(record);
    const testName = flags.testName ?? basename(config.testScript).replace(/\.[^.]+$/, "");
    reports = () => {
      const duration = (performance.now() - began) / 1000;
      const run = { name: testName, duration, error: failure, cases: collectCases(driver?.subtests ?? [], failure, duration) };
      writeHtmlReport(resolve(outDir, "report.html"), run, record, outDir);
      if (flags.junitXml !== undefined) writeJunit(resolve(outDir, flags.junitXml), run, record);
      record.closeFiles();
    };
    driver = new Driver({
      vms: config.vms,
      containers: config.containers,
      vlans: config.vlans,
      globalTimeout: config.globalTimeout,
      outDir,
      logger,
      keepVmState: flags.keepVmState === true || flags.keepMachineState === true,
      ...(flags.stateDir === undefined ? {} : { stateRoot: resolve(flags.stateDir) }),
      ...testHooks(),
    });
    await driver.setUp();
    if (flags.interactive) {
      // As nixpkgs: no global timeout while a person drives.
      const d = driver;
      const units = flags.manifest === undefined ? undefined : unitsByMachine(await readManifest(flags.manifest));
      await startRepl(d, { runTests: () => runTestScript(d, resolve(config.testScript)), banner: replBanner(d), ...(units ? { units } : {}) });
      exitCode = 0;
      return exitCode;
    }
    if (flags.pauseOnFailure) driver.failureHook = pauseOnFailure(driver);
    driver.armGlobalTimeout();
    const scriptBegan = performance.now();
    await runTestScript(driver, resolve(config.testScript));
    await driver.guard(driver.syncAll());
    logger.log(`test script finished in ${((performance.now() - scriptBegan) / 1000).toFixed(2)}s`);
    exitCode = 0;
  } catch (error) {
    if (error instanceof ConfigError && driver === undefined) {
      logger.error(error.message);
      exitCode = EXIT_USAGE;
    } else {
      const reason = driver?.signal.aborted && !(error instanceof NixosTestError) ? (driver.signal.reason as unknown) : error;
      failure = reason ?? error;
      logger.error(`test failed:\n${describeFailure(failure)}`);
      if (exitCode === 0) exitCode = EXIT_FAILED;
    }
  } finally {
    over = true;
    await driver?.cleanup();
    try {
      reports?.();
    } catch (error) {
      logger.error(`could not write the reports: ${(error as Error).message}`);
      if (exitCode === 0) exitCode = EXIT_FAILED;
    }
    logger.end();
  }
  return exitCode;
}

function unitsByMachine(manifest: Manifest): Record<string, string[]> {
  return Object.fromEntries(manifest.nodes.map((n) => [n.binding, n.units]));
}

function replBanner(driver: Driver): string {
  return [
    "nixos-test-ts interactive driver. In scope: " + Object.keys(driver.testSymbols()).join(", ") + ", runTests, testScript.",
    'Top-level await works (await machine.succeed("uname -a")); TypeScript annotations are accepted.',
    ".shell <machine> opens a root shell; Ctrl-C cancels a running command; .exit stops every machine.",
  ].join("\n");
}

/** --pause-on-failure: a failing call waits for a person's decision in a REPL, with the VMs still running. */
function pauseOnFailure(driver: Driver): (error: unknown, machine: string | undefined) => Promise<"retry" | "continue" | "throw"> {
  return async (error) => {
    if (typeof error === "object" && error !== null) driver.offered.add(error);
    driver.logger.error(`paused on failure:\n${describeFailure(error)}`);
    const resumeClock = driver.pauseGlobalTimeout();
    let decision: "retry" | "continue" | "throw" = "throw";
    const choose = (d: typeof decision) =>
      function (this: import("node:repl").REPLServer): void {
        decision = d;
        this.close();
      };
    await startRepl(driver, {
      runTests: () => Promise.reject(new Error("runTests() is not available while the test is paused")),
      banner:
        "The test is paused; the VMs keep running. Inspect with the test's symbols (top-level await works), then:\n" +
        "  .retry     run the failed step again\n  .continue  go on as if it had not failed (it returns undefined)\n  .abort     fail the test (also .exit / Ctrl-D)",
      commands: {
        retry: { help: "Run the failed step again", action: choose("retry") },
        continue: { help: "Go on as if the step had not failed", action: choose("continue") },
        abort: { help: "Fail the test", action: choose("throw") },
      },
    });
    resumeClock();
    driver.logger.log(`resuming after the pause: ${decision === "throw" ? "abort" : decision}`);
    return decision;
  };
}

/** Hooks for the project's own tests, never for users: they make failures reproducible. */
function testHooks(): { testHooks?: ShellTestHooks } {
  const delay = process.env.NTT_TEST_SHELL_READ_DELAY_MS;
  const hooks: ShellTestHooks = {
    ...(delay === undefined ? {} : { readDelayMs: Number(delay) }),
    ...(process.env.NTT_TEST_NO_FLOW_CONTROL === "1" ? { noFlowControl: true } : {}),
    ...(process.env.NTT_TEST_NO_DATA_PORT === "1" ? { noDataPort: true } : {}),
  };
  return Object.keys(hooks).length === 0 ? {} : { testHooks: hooks };
}

const code = await main(process.argv);
// Open handles (a script's stray timer) must not keep a finished test alive.
process.exit(code);
