// The generated module is reused when it is what this manifest and this
// generator make (ts-morph is then never loaded), and made anew otherwise.
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { generate, type Timings } from "../../generator/pipeline.js";
import { ONE_NODE, TWO_NODES } from "./helpers.js";

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
