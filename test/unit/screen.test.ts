import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { keyForChar, normaliseChord } from "../../runtime/machine/keys.js";
import { parseWindowNames } from "../../runtime/machine/screen.js";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "test", "unit", "fixtures");

test("window names from a real xwininfo -root -tree (Xvfb + xmessage): named windows only", () => {
  const recorded = readFileSync(join(fixtures, "xwininfo-xmessage.txt"), "utf8");
  assert.deepEqual(parseWindowNames(recorded), ["Hello Window"]);
});

test("window names: several windows, names with spaces and colons, no windows", () => {
  const text = [
    "  Root window id: 0x50d (the root window) (has no name)",
    '     0x200030 "Firefox: a page": ("firefox" "Firefox")  800x600+0+0  +0+0',
    '        0x400001 "xterm": ("xterm" "XTerm")  484x316+0+0  +10+10',
    "        0x400002 (has no name): ()  1x1+-1+-1  +9+9",
  ].join("\n");
  assert.deepEqual(parseWindowNames(text), ["Firefox: a page", "xterm"]);
  assert.deepEqual(parseWindowNames("xwininfo: Window id: 0x50d (the root window) (has no name)\n"), []);
});

test("keys: characters map to QEMU key names as nixpkgs does, chords normalise", () => {
  assert.equal(keyForChar("a"), "a");
  assert.equal(keyForChar("A"), "shift-a");
  assert.equal(keyForChar("!"), "shift-1");
  assert.equal(keyForChar("\n"), "ret");
  assert.equal(keyForChar(" "), "spc");
  assert.equal(keyForChar("é"), undefined);
  assert.equal(normaliseChord("ctrl-alt-delete"), "ctrl-alt-delete");
  assert.equal(normaliseChord("ctrl+c"), "ctrl-c");
  assert.equal(normaliseChord("Alt-F2"), "alt-f2");
  assert.equal(normaliseChord("ctrl-Enter"), "ctrl-ret");
  assert.equal(normaliseChord("A"), "shift-a");
});
