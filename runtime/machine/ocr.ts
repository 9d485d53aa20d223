import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { UsageError } from "../errors.js";
import { which } from "../preflight.js";

const run = promisify(execFile);

/**
 * nixpkgs' preprocessing for OCR (test-driver ocr.py): upscale, normalise,
 * grayscale, sharpen, posterise; the second variant is the negative, which
 * reads light-on-dark consoles better.
 */
const PREPROCESS = ["-filter", "Catrom", "-density", "72", "-resample", "300", "-contrast", "-normalize", "-despeckle", "-type", "grayscale", "-sharpen", "1", "-posterize", "3"];

export function ocrAvailable(): { tesseract: boolean; magick: boolean } {
  return { tesseract: which("tesseract") !== undefined, magick: which("magick") !== undefined || which("convert") !== undefined };
}

function requireOcr(machine: string): void {
  if (!ocrAvailable().tesseract) {
    throw new UsageError(
      `${machine}: OCR needs tesseract on PATH: set enableOCR = true in the test (Nix), or apt-get install tesseract-ocr imagemagick`,
    );
  }
}

async function tesseract(image: string): Promise<string> {
  const { stdout } = await run("tesseract", [image, "-", "--psm", "11", "-l", "eng"], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** OCR of one screenshot: the raw image, then (with ImageMagick) the two preprocessed variants. */
export async function readScreen(machine: string, png: string, variants: boolean): Promise<string[]> {
  requireOcr(machine);
  const texts = [await tesseract(png)];
  if (!variants) return texts;
  const magick = which("magick") !== undefined ? "magick" : which("convert") !== undefined ? "convert" : undefined;
  if (magick === undefined) return texts;
  const dir = await mkdtemp(join(tmpdir(), "ntt-ocr-"));
  try {
    const positive = join(dir, "positive.png");
    const negative = join(dir, "negative.png");
    await run(magick, [png, ...PREPROCESS, positive]);
    await run(magick, [png, ...PREPROCESS, "-negate", negative]);
    texts.push(await tesseract(positive), await tesseract(negative));
    return texts;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
