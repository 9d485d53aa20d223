/**
 * Findings of the check (TypeScript's and the lint's) in one shape, printed
 * the way a build log should show them: `test.ts:12:5 error TS2345 …`, then
 * the line and a caret under the culprit. All of them at once.
 */
import { isAbsolute, relative } from "node:path";
import type ts from "typescript";

export type Severity = "error" | "warning";

export interface Finding {
  severity: Severity;
  /** `TS2345`, or `lint/floating-promise` and friends. */
  code: string;
  message: string;
  /** Absent for findings about the whole program (e.g. a bad option). */
  location?: {
    file: string;
    /** 1-based. */
    line: number;
    /** 1-based. */
    column: number;
    /** Characters to underline on that line (at least 1). */
    length: number;
    /** The source line itself, for the code frame. */
    text: string;
  };
}

/** Where a node (or a text span) of a source file is, as a Finding location. */
export function locate(file: ts.SourceFile, start: number, length: number): Finding["location"] {
  const { line, character } = file.getLineAndCharacterOfPosition(start);
  const lineStarts = file.getLineStarts();
  const lineStart = lineStarts[line] ?? 0;
  const lineEnd = line + 1 < lineStarts.length ? (lineStarts[line + 1] as number) : file.text.length;
  const text = file.text.slice(lineStart, lineEnd).replace(/\r?\n$/, "");
  return { file: file.fileName, line: line + 1, column: character + 1, length: Math.max(1, Math.min(length, text.length - character)), text };
}

/** TypeScript's diagnostics as findings; `rename` maps virtual file names to what the user should see. */
export function fromTypeScript(tsApi: typeof ts, diagnostics: readonly ts.Diagnostic[], rename: (file: string) => string = (f) => f): Finding[] {
  return diagnostics.map((d) => {
    const finding: Finding = {
      severity: d.category === tsApi.DiagnosticCategory.Error ? "error" : "warning",
      code: `TS${d.code}`,
      message: tsApi.flattenDiagnosticMessageText(d.messageText, "\n"),
    };
    if (d.file !== undefined && d.start !== undefined) {
      const location = locate(d.file, d.start, d.length ?? 1);
      if (location !== undefined) finding.location = { ...location, file: rename(location.file) };
    }
    return finding;
  });
}

/** Sorted by file, line and column, so the output reads top to bottom. */
export function sortFindings(findings: Finding[]): Finding[] {
  const key = (f: Finding): [string, number, number] => [f.location?.file ?? "", f.location?.line ?? 0, f.location?.column ?? 0];
  return [...findings].sort((a, b) => {
    const [fa, la, ca] = key(a);
    const [fb, lb, cb] = key(b);
    return fa < fb ? -1 : fa > fb ? 1 : la - lb || ca - cb;
  });
}

/** A path as the user wants to read it: relative to the working directory when it is below it. */
export function displayPath(file: string, cwd = process.cwd()): string {
  if (!isAbsolute(file)) return file;
  const rel = relative(cwd, file);
  return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? file : rel;
}

/** `test.ts:12:5 error TS2345 message`, then the line with a caret. */
export function formatFinding(finding: Finding, cwd = process.cwd()): string {
  const message = finding.message.replace(/\n/g, "\n  ");
  const loc = finding.location;
  if (loc === undefined) return `${finding.severity} ${finding.code} ${message}`;
  const head = `${displayPath(loc.file, cwd)}:${loc.line}:${loc.column} ${finding.severity} ${finding.code} ${message}`;
  const number = String(loc.line);
  const gutter = " ".repeat(number.length);
  // Tabs keep their width in the caret line, so the caret lands under the right character.
  const before = loc.text.slice(0, loc.column - 1).replace(/[^\t]/g, " ");
  return `${head}\n\n  ${number} | ${loc.text}\n  ${gutter} | ${before}${"^".repeat(loc.length)}\n`;
}

export function formatFindings(findings: Finding[], cwd = process.cwd()): string {
  return sortFindings(findings)
    .map((f) => formatFinding(f, cwd))
    .join("\n");
}

export function summary(findings: Finding[]): string {
  const errors = findings.filter((f) => f.severity === "error").length;
  const warnings = findings.length - errors;
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
  return `${plural(errors, "error")}, ${plural(warnings, "warning")}`;
}
