import { readFile } from "node:fs/promises";
import { ConfigError } from "./errors.js";

/**
 * A tiny structural validator. Its only job is good messages: every error
 * names the field (as a dotted path) and shows the value that was found.
 */
export class Validator {
  constructor(private readonly source: string) {}

  fail(field: string, expected: string, value: unknown): never {
    throw new ConfigError(`${this.source}: ${field} must be ${expected}, got ${show(value)}`, field);
  }

  object(field: string, value: unknown): Record<string, unknown> {
    if (typeof value !== "object" || value === null || Array.isArray(value)) this.fail(field, "an object", value);
    return value as Record<string, unknown>;
  }

  string(field: string, value: unknown, { nonEmpty = true } = {}): string {
    if (typeof value !== "string" || (nonEmpty && value.length === 0)) {
      this.fail(field, nonEmpty ? "a non-empty string" : "a string", value);
    }
    return value;
  }

  boolean(field: string, value: unknown): boolean {
    if (typeof value !== "boolean") this.fail(field, "true or false", value);
    return value;
  }

  number(field: string, value: unknown, { min, integer = false }: { min?: number; integer?: boolean } = {}): number {
    const ok = typeof value === "number" && Number.isFinite(value) && (!integer || Number.isInteger(value));
    if (!ok || (min !== undefined && value < min)) {
      const kind = integer ? "an integer" : "a number";
      this.fail(field, min === undefined ? kind : `${kind} ≥ ${min}`, value);
    }
    return value;
  }

  array<T>(field: string, value: unknown, item: (field: string, value: unknown) => T): T[] {
    if (!Array.isArray(value)) this.fail(field, "an array", value);
    return value.map((v, i) => item(`${field}[${i}]`, v));
  }

  /** Fields this schema does not know are probably typos: say so instead of ignoring them. */
  noUnknownKeys(field: string, value: Record<string, unknown>, known: readonly string[]): void {
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) {
        const where = field === "" ? key : `${field}.${key}`;
        throw new ConfigError(`${this.source}: unknown field ${where} (known fields: ${known.join(", ")})`, where);
      }
    }
  }
}

export function show(value: unknown): string {
  if (value === undefined) return "nothing (the field is missing)";
  const json = JSON.stringify(value);
  if (json === undefined) return String(value);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

/** Reads and parses a JSON file; `label` (e.g. `--config x.json`) starts each error message. */
export async function readJsonFile(path: string, label: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(`${label}: cannot read the file (${(error as Error).message})`, undefined, { cause: error });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ConfigError(`${label}: not valid JSON (${(error as Error).message})`, undefined, { cause: error });
  }
}
