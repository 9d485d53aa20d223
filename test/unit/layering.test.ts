// The layering, kept by a check rather than by memory: every import of every
// source file is read, and the rules of DESIGN.md hold.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

interface Import {
  from: string;
  /** The imported file relative to the repository, or the bare specifier. */
  target: string;
  typeOnly: boolean;
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) return sources(path);
    return name.endsWith(".ts") && !name.endsWith(".d.ts") ? [path] : [];
  });
}

const IMPORT = /^\s*(?:import|export)\s+(type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm;
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

function importsOf(file: string): Import[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const found: Import[] = [];
  const add = (specifier: string, typeOnly: boolean): void => {
    const target = specifier.startsWith(".") ? relative(ROOT, resolve(ROOT, dirname(file), specifier)).replace(/\.js$/, ".ts") : specifier;
    found.push({ from: file, target, typeOnly });
  };
  for (const m of text.matchAll(IMPORT)) add(m[2] as string, m[1] !== undefined);
  for (const m of text.matchAll(DYNAMIC)) add(m[1] as string, false);
  return found;
}

const all = ["lib", "runtime", "generator"].flatMap(sources).flatMap(importsOf);
const local = (i: Import): boolean => i.target.startsWith("lib/") || i.target.startsWith("runtime/") || i.target.startsWith("generator/");
const show = (bad: Import[]): string => bad.map((i) => `${i.from} → ${i.target}`).join("\n");

test("the checker sees the imports (it would pass vacuously otherwise)", () => {
  assert.ok(all.length > 100, `only ${all.length} imports found`);
  assert.ok(all.some((i) => i.from === "runtime/cli.ts" && i.target === "runtime/driver/driver.ts"));
});

test("lib/ imports nothing of the project outside lib/", () => {
  const bad = all.filter((i) => i.from.startsWith("lib/") && local(i) && !i.target.startsWith("lib/"));
  assert.deepEqual(bad, [], show(bad));
});

test("runtime/ never imports generator/", () => {
  const bad = all.filter((i) => i.from.startsWith("runtime/") && i.target.startsWith("generator/"));
  assert.deepEqual(bad, [], show(bad));
});

test("generator/ reaches the runtime only through types", () => {
  const bad = all.filter((i) => i.from.startsWith("generator/") && i.target.startsWith("runtime/") && !i.typeOnly);
  assert.deepEqual(bad, [], show(bad));
});

test("outside runtime/machine/, machines are reached through runtime/machine/index.ts only (never a backend's files)", () => {
  const bad = all.filter((i) => !i.from.startsWith("runtime/machine/") && i.target.startsWith("runtime/machine/") && i.target !== "runtime/machine/index.ts");
  assert.deepEqual(bad, [], show(bad));
});
