// What an editor sees after `nixos-test-ts typings`: TypeScript's language service on the files it wrote.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";
import type * as TS from "typescript";
import { TWO_NODES, runCliInProcess, testDir } from "./helpers.js";

const ts = createRequire(import.meta.url)("typescript") as typeof TS;

test("typings: the editor completes machine names, a node's units and its declared ports", async () => {
  const t = await testDir(TWO_NODES, [
    'await server.waitForUnit("");',
    "await server.waitForOpenPort();",
    'await client.waitForUnit("");',
    "ser;",
    'await Promise.all(Object.values(machines).map((m) => m.waitForUnit("multi-user.target")));',
  ]);
  const r = await runCliInProcess(["typings", "--manifest", "manifest.json", "test.ts"], { cwd: t.dir });
  assert.equal(r.code, 0, r.stderr);

  const config = ts.getParsedCommandLineOfConfigFile(
    join(t.dir, "tsconfig.json"),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(String(d.messageText)) },
  );
  assert.ok(config !== undefined);
  const service = ts.createLanguageService({
    getScriptFileNames: () => config.fileNames,
    getScriptVersion: () => "1",
    getScriptSnapshot: (f) => (ts.sys.fileExists(f) ? ts.ScriptSnapshot.fromString(ts.sys.readFile(f) ?? "") : undefined),
    getCurrentDirectory: () => t.dir,
    getCompilationSettings: () => config.options,
    getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
    fileExists: (f) => ts.sys.fileExists(f),
    readFile: (f) => ts.sys.readFile(f),
  });
  const text = ts.sys.readFile(t.script) ?? "";
  /** Offset of a 1-based line and column. */
  const line = (n: number, column: number): number =>
    text
      .split("\n")
      .slice(0, n - 1)
      .reduce((sum, l) => sum + l.length + 1, 0) +
    column -
    1;
  const names = (n: number, column: number, filter: RegExp = /./): string[] =>
    (service.getCompletionsAtPosition(t.script, line(n, column), {})?.entries ?? []).map((e) => e.name).filter((name) => filter.test(name));

  assert.deepEqual(
    names(1, 27),
    ["multi-user.target", "sshd.service", "sshd", "nginx.service", "nginx"],
    "server's units, services also without .service (the getty@ template is a pattern, not a name)",
  );
  assert.deepEqual(names(2, 30, /^\d+$/), ["22", "80"], "server's declared ports");
  assert.deepEqual(names(3, 27), ["multi-user.target", "sshd.service", "sshd"], "client has no nginx");
  assert.deepEqual(names(4, 4, /^(client|server|machines|vlan1|startAll)$/).sort(), ["client", "machines", "server", "startAll", "vlan1"]);
  const errors = service.getSemanticDiagnostics(t.script).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
  assert.equal(errors.length, 4, errors.join("\n")); // the three incomplete calls and `ser`; the last line is fine
});
