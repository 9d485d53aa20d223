import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describeFailure } from "./failure.js";
import type { RecordSink } from "../log/record.js";
import { clean } from "../log/xml.js";
import { errorText, type RunResult } from "./results.js";

/**
 * JUnit XML in the shape CI systems read (Jenkins, GitLab, GitHub actions'
 * reporters): testsuites > testsuite > testcase (+ failure, system-out), with
 * real durations — one case per subtest, as nixpkgs does since #556413.
 */
export function junitXml(run: RunResult, record: RecordSink): string {
  // Loaded here, not at the driver's start (~180 modules with its DOM): only --junit-xml needs it, at the end.
  const { create } = createRequire(import.meta.url)("xmlbuilder2") as typeof import("xmlbuilder2");
  const failures = run.cases.filter((c) => c.error !== undefined).length;
  const root = create({ version: "1.0", encoding: "UTF-8" }).ele("testsuites", {
    name: "nixos-test-ts",
    tests: String(run.cases.length),
    failures: String(failures),
    errors: "0",
    time: run.duration.toFixed(3),
  });
  const suite = root.ele("testsuite", {
    name: run.name,
    tests: String(run.cases.length),
    failures: String(failures),
    errors: "0",
    skipped: "0",
    time: run.duration.toFixed(3),
    timestamp: new Date(Date.now() - run.duration * 1000).toISOString().replace(/\.\d+Z$/, ""),
  });
  for (const c of run.cases) {
    const tc = suite.ele("testcase", { name: clean(c.name), classname: clean(run.name), time: c.seconds.toFixed(3) });
    if (c.error !== undefined) {
      const { type, message } = errorText(c.error);
      tc.ele("failure", { message: clean(message.split("\n")[0] ?? ""), type }).txt(clean(describeFailure(c.error)));
    }
    if (c.frame !== undefined) tc.ele("system-out").txt(clean(record.text(c.frame)));
  }
  suite.ele("system-out").txt(clean(record.text()));
  return root.end({ prettyPrint: true });
}

export function writeJunit(path: string, run: RunResult, record: RecordSink): void {
  writeFileSync(path, junitXml(run, record));
}
