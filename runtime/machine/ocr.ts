import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MachineError, UsageError } from "../errors.js";
import { which } from "../host/preflight.js";

/**
 * tesseract and ImageMagick are plain one-shot programs: execa's errors carry their stderr, nothing lingers.
 * Imported when first used: execa is ~120 modules, and most tests never read the screen.
 */
async function run(file: string, args: string[]): Promise<{ stdout: string }> {
  const { execa } = await import("execa");
  return execa(file, args, { maxBuffer: 16 * 1024 * 1024, stripFinalNewline: false });
}

/**
 * nixpkgs' preprocessing for OCR (test-driver ocr.py), argument for argument:
 * upscale, normalise, grayscale, sharpen, posterise, (negate,) gamma, blur;
 * the negative reads light-on-dark consoles better.
 */
function preprocessArgs(negate: boolean): string[] {
  return [
    "-filter",
    "Catrom",
    "-density",
    "72",
    "-resample",
    "300",
    "-contrast",
    "-normalize",
    "-despeckle",
    "-type",
    "grayscale",
    "-sharpen",
    "1",
    "-posterize",
    "3",
    ...(negate ? ["-negate"] : []),
    "-gamma",
    "100",
    "-blur",
    "1x65535",
  ];
}

/** nixpkgs' tesseract arguments: legacy + LSTM engines (--oem 2), sparse text (--psm 11). */
const TESSERACT_ARGS = ["--oem", "2", "-c", "debug_file=/dev/null", "--psm", "11"];

export function ocrAvailable(): { tesseract: boolean; magick: boolean } {
  return { tesseract: which("tesseract") !== undefined, magick: which("magick") !== undefined || which("convert") !== undefined };
}

function requireOcr(machine: string): void {
  if (!ocrAvailable().tesseract) {
    throw new UsageError(`${machine}: OCR needs tesseract on PATH: set enableOCR = true in the test (Nix), or apt-get install tesseract-ocr imagemagick`);
  }
}

/** Set once tesseract said its language data has no legacy engine (Debian's): then LSTM only. */
let lstmOnly = false;

async function tesseract(image: string): Promise<string> {
  const args = lstmOnly ? TESSERACT_ARGS.map((a, i) => (i === 1 ? "1" : a)) : TESSERACT_ARGS;
  try {
    const { stdout } = await run("tesseract", [image, "-", ...args]);
    return stdout;
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? "");
    // nixpkgs' tessdata has the legacy engine; Debian's eng.traineddata does not. Upstream's --oem 2 then cannot load at all.
    if (!lstmOnly && /legacy\) engine requested, but components are not present/.test(stderr)) {
      lstmOnly = true;
      return tesseract(image);
    }
    throw new MachineError("tesseract", `OCR failed: ${stderr.trim().split("\n").slice(-3).join(" / ") || String(error)}`);
  }
}

/** OCR of one screenshot: the raw image, then (with ImageMagick) the two preprocessed variants. */
export async function readScreen(machine: string, png: string, variants: boolean): Promise<string[]> {
  requireOcr(machine);
  const texts = [await tesseract(png)];
  if (!variants) return texts;
  // As upstream, the variants need ImageMagick: without it this is an error, not one variant fewer.
  // `magick convert` (ImageMagick 7, upstream's call) or `convert` (ImageMagick 6, e.g. Debian's).
  const magick: [string, string[]] | undefined =
    which("magick") !== undefined ? ["magick", ["convert"]] : which("convert") !== undefined ? ["convert", []] : undefined;
  if (magick === undefined) {
    throw new UsageError(
      `${machine}: OCR variants need ImageMagick (\`magick\` or \`convert\`) on PATH: set enableOCR = true in the test (Nix), or apt-get install imagemagick`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), "ntt-ocr-"));
  try {
    const positive = join(dir, "positive.png");
    const negative = join(dir, "negative.png");
    await run(magick[0], [...magick[1], ...preprocessArgs(false), png, positive]);
    await run(magick[0], [...magick[1], ...preprocessArgs(true), png, negative]);
    texts.push(await tesseract(positive), await tesseract(negative));
    return texts;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
