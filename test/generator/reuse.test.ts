// The generated module is reused when it is what this manifest and this
// generator make (ts-morph is then never loaded), and made anew otherwise.
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { check, generate, type CheckRequest, type Timings } from "../../generator/pipeline.js";
import { ONE_NODE, TWO_NODES, testDir } from "./helpers.js";

test("the module is reused while manifest and generator are unchanged; a new manifest or an edited module regenerates", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ntt-reuse-"));
  const manifestPath = join(dir, "manifest.json");
  const request = { manifestPath, outDir: join(dir, "out"), command: "test" };
  const run = async (): Promise<{ reused: boolean; text: string }> => {
    const timings: Partial<Timings> = {};
    const generated = await generate(request, timings);
    return { reused: timings.importGenerator === 0, text: generated.text };
  };

  writeFileSync(manifestPath, JSON.stringify(TWO_NODES));
  const first = await run();
  assert.equal(first.reused, false, "nothing to reuse the first time");
  const second = await run();
  assert.equal(second.reused, true, "unchanged: reused");
  assert.equal(second.text, first.text);

  writeFileSync(manifestPath, JSON.stringify(ONE_NODE));
  const changed = await run();
  assert.equal(changed.reused, false, "a new manifest regenerates");
  assert.notEqual(changed.text, first.text);

  appendFileSync(join(dir, "out", "test.generated.ts"), "\nexport const edited = 1;\n");
  const afterEdit = await run();
  assert.equal(afterEdit.reused, false, "an edited module is not trusted");
  assert.equal(readFileSync(join(dir, "out", "test.generated.ts"), "utf8"), changed.text);
});

test("a check skips the generated module's own check and emit when an earlier one checked and emitted it with the same inputs", async () => {
  const t = await testDir(TWO_NODES, ['await server.waitForUnit("nginx.service");']);
  const run = async (options: Partial<CheckRequest> = {}) =>
    (await check({ manifestPath: t.manifest, outDir: t.out, script: t.script, command: "test", ...options })).result;
  const generatedJs = join(t.out, "test.generated.js");

  const first = await run();
  assert.equal(first.errors, 0, JSON.stringify(first.findings));
  assert.equal(first.generatedSettled, false, "the first check checks the module");
  const js = readFileSync(generatedJs, "utf8");

  writeFileSync(t.script, 'await client.waitForUnit("sshd.service");\nlog("edited");\n');
  const second = await run();
  assert.equal(second.generatedSettled, true, "only the script changed");
  assert.match(readFileSync(join(t.out, "test.js"), "utf8"), /edited/, "the script is emitted");
  assert.equal(readFileSync(generatedJs, "utf8"), js, "the module's JS stays");

  writeFileSync(t.script, 'await client.waitForUnit("nginx.service");\n');
  const wrong = await run();
  assert.equal(wrong.generatedSettled, true);
  assert.ok(wrong.errors > 0, "the script's own errors are still found");

  rmSync(generatedJs);
  writeFileSync(t.script, 'await client.waitForUnit("sshd.service");\n');
  const rewritten = await run();
  assert.equal(rewritten.generatedSettled, false, "its JS is gone: checked and emitted again");
  assert.equal(readFileSync(generatedJs, "utf8"), js);

  writeFileSync(generatedJs, "// edited by hand\n");
  assert.equal((await run()).generatedSettled, false, "JS that is not what was emitted is emitted again");
  assert.equal(readFileSync(generatedJs, "utf8"), js);

  assert.equal((await run({ strictPorts: true })).generatedSettled, true, "the lint's options are not the module's inputs");

  const unchecked = await testDir(TWO_NODES, ['await server.waitForUnit("nginx.service");']);
  const checkIt = async (options: Partial<CheckRequest> = {}) =>
    (await check({ manifestPath: unchecked.manifest, outDir: unchecked.out, script: unchecked.script, command: "test", ...options })).result;
  assert.equal((await checkIt({ skipTypeCheck: true })).generatedSettled, false);
  assert.equal((await checkIt()).generatedSettled, false, "a check without the type check vouches for nothing");
});
