/**
 * The lint pass: mistakes that type-check but break a test, found with the
 * type checker of the per-test program (no eslint).
 *
 * - lint/floating-promise: a promise nobody awaits (`machine.succeed("x");`,
 *   `p.then(f);` without a rejection handler). The test would neither wait
 *   for it nor see it fail. `void p;` says "in the background, on purpose".
 * - lint/promise-array: an array of promises as a statement, or awaited as an
 *   array (`await [a, b]` waits for nothing): pass it to `Promise.all`.
 * - lint/misused-promise: an async callback where a void one is expected
 *   (`machines.forEach(async (m) => …)`): nobody waits for what it returns.
 * - lint/unknown-unit: a unit literal passed to a unit method (`waitForUnit`,
 *   `startJob`, …) that the node does not declare, with the nearest declared
 *   units and the nodes that have it; or a template without an instance
 *   (`backup@.service`), which the types accept but systemd refuses.
 * - lint/undeclared-port: a port literal that the node's firewall does not
 *   open, passed to `waitForOpenPort`, `waitForClosedPort` or `forwardPort`
 *   (`guestPort`). A warning, an error under strict ports.
 */
import type ts from "typescript";
import type { Manifest } from "../lib/manifest.js";
import { locate, type Finding } from "./diagnostics.js";
import { unitProblem } from "./units.js";

export interface LintOptions {
  manifest: Manifest;
  /** Undeclared ports are errors instead of warnings. */
  strictPorts: boolean;
}

const PORT_METHODS = new Set(["waitForOpenPort", "waitForClosedPort", "forwardPort"]);
const UNIT_METHODS = new Set(["waitForUnit", "waitForJob", "getUnitInfo", "getUnitProperty", "requireUnitState", "startJob", "stopJob"]);
const CALL_TEXT_MAX = 40;

export function lint(tsApi: typeof ts, checker: ts.TypeChecker, files: readonly ts.SourceFile[], options: LintOptions): Finding[] {
  const findings: Finding[] = [];
  for (const file of files) new FileLinter(tsApi, checker, file, options, findings).run();
  return findings;
}

class FileLinter {
  constructor(
    private readonly ts: typeof import("typescript"),
    private readonly checker: ts.TypeChecker,
    private readonly file: ts.SourceFile,
    private readonly options: LintOptions,
    private readonly findings: Finding[],
  ) {}

  run(): void {
    const visit = (node: ts.Node): void => {
      if (this.ts.isExpressionStatement(node)) this.statement(node.expression);
      else if (this.ts.isAwaitExpression(node)) this.awaited(node);
      else if (this.ts.isCallExpression(node) || this.ts.isNewExpression(node)) {
        this.callbacks(node);
        if (this.ts.isCallExpression(node)) {
          this.ports(node);
          this.units(node);
        }
      }
      this.ts.forEachChild(node, visit);
    };
    visit(this.file);
  }

  private report(node: ts.Node, code: string, message: string, severity: Finding["severity"] = "error"): void {
    const start = node.getStart(this.file);
    const location = locate(this.file, start, node.getEnd() - start);
    this.findings.push({ severity, code, message, ...(location === undefined ? {} : { location }) });
  }

  private statement(expression: ts.Expression): void {
    const floating = this.unhandled(expression);
    if (floating !== undefined) {
      const what = this.describe(floating.node);
      const message = floating.then
        ? `${what} handles success only: a rejection would go unnoticed. Add a rejection handler, \`await\` it, or mark it \`void\` if it is meant to run in the background.`
        : `${what} is a promise that nobody awaits: the test neither waits for it nor sees it fail. Add \`await\` (or \`void\` if it is meant to run in the background).`;
      this.report(floating.node, "lint/floating-promise", message);
      return;
    }
    if (!this.ts.isAwaitExpression(expression) && this.isPromiseArray(this.checker.getTypeAtLocation(expression))) {
      this.report(
        expression,
        "lint/promise-array",
        "an array of promises that nobody awaits: wrap it in `await Promise.all(…)` (or `Promise.allSettled` to see every failure).",
      );
    }
  }

  private awaited(node: ts.AwaitExpression): void {
    if (this.isPromiseArray(this.checker.getTypeAtLocation(node.expression))) {
      this.report(
        node,
        "lint/promise-array",
        "`await` of an array does not wait for the promises in it: use `await Promise.all(…)` (or `Promise.allSettled`).",
      );
    }
  }

  /** The floating promise in `expression`, if any, following typescript-eslint's no-floating-promises. */
  private unhandled(expression: ts.Expression): { node: ts.Expression; then: boolean } | undefined {
    const t = this.ts;
    const e = skipParentheses(t, expression);
    if (t.isVoidExpression(e) || t.isAwaitExpression(e)) return undefined;
    if (t.isBinaryExpression(e)) {
      const op = e.operatorToken.kind;
      if (op === t.SyntaxKind.CommaToken) return this.unhandled(e.left) ?? this.unhandled(e.right);
      if (op === t.SyntaxKind.AmpersandAmpersandToken || op === t.SyntaxKind.BarBarToken || op === t.SyntaxKind.QuestionQuestionToken) {
        return this.unhandled(e.right) ?? (op === t.SyntaxKind.AmpersandAmpersandToken ? undefined : this.unhandled(e.left));
      }
      // Assignments and arithmetic: the value is used.
      return undefined;
    }
    if (t.isConditionalExpression(e)) return this.unhandled(e.whenTrue) ?? this.unhandled(e.whenFalse);
    if (t.isCallExpression(e) && t.isPropertyAccessExpression(e.expression)) {
      const method = e.expression.name.text;
      const receiver = e.expression.expression;
      if (this.isThenable(this.checker.getTypeAtLocation(receiver))) {
        if (method === "catch") return e.arguments.length >= 1 ? undefined : { node: e, then: false };
        if (method === "then") return e.arguments.length >= 2 ? undefined : { node: e, then: true };
        // finally() passes a rejection on: the chain is as unhandled as its receiver.
        if (method === "finally") return this.unhandled(receiver) === undefined ? undefined : { node: e, then: false };
      }
    }
    return this.isThenable(this.checker.getTypeAtLocation(e)) ? { node: e, then: false } : undefined;
  }

  /** `machines.forEach(async (m) => …)`: a promise-returning function where a void one is expected. */
  private callbacks(call: ts.CallExpression | ts.NewExpression): void {
    const t = this.ts;
    for (const arg of call.arguments ?? []) {
      if (!t.isArrowFunction(arg) && !t.isFunctionExpression(arg)) continue;
      const signature = this.checker.getSignatureFromDeclaration(arg);
      if (signature === undefined || !this.isThenable(signature.getReturnType())) continue;
      const expected = this.checker.getContextualType(arg);
      const signatures = expected === undefined ? [] : this.checker.getNonNullableType(expected).getCallSignatures();
      if (signatures.length === 0) continue;
      const voidOnly = signatures.every((s) => (s.getReturnType().flags & t.TypeFlags.Void) !== 0);
      if (!voidOnly) continue;
      const callee = t.isCallExpression(call) ? this.describe(call.expression) : "this call";
      this.report(
        arg,
        "lint/misused-promise",
        `${callee} expects a function that returns nothing, so nobody waits for the promise this async function returns, nor sees it fail. ` +
          "Use `for (const x of …) await …` or `await Promise.all(xs.map(async (x) => …))`.",
      );
    }
  }

  private ports(call: ts.CallExpression): void {
    const t = this.ts;
    if (!t.isPropertyAccessExpression(call.expression)) return;
    const method = call.expression.name.text;
    if (!PORT_METHODS.has(method)) return;
    const nodeName = this.literalName(call.expression.expression);
    const node = this.options.manifest.nodes.find((n) => n.name === nodeName);
    if (node === undefined) return;
    let portExpression: ts.Expression | undefined;
    if (method === "forwardPort") {
      const options = call.arguments[0];
      if (options !== undefined && t.isObjectLiteralExpression(options)) {
        const guest = options.properties.find((p) => p.name !== undefined && t.isIdentifier(p.name) && p.name.text === "guestPort");
        if (guest !== undefined && t.isPropertyAssignment(guest)) portExpression = guest.initializer;
      }
    } else {
      portExpression = call.arguments[0];
    }
    if (portExpression === undefined) return;
    const type = this.checker.getTypeAtLocation(portExpression);
    if (!type.isNumberLiteral()) return;
    const port = type.value;
    if (node.ports.tcp.includes(port)) return;
    const declared = node.ports.tcp.length > 0 ? `its open TCP ports are ${node.ports.tcp.join(", ")}` : "it declares no open TCP ports";
    const udp = node.ports.udp.includes(port) ? ` (${port} is open for UDP, but ${method} is about TCP)` : "";
    const strict = this.options.strictPorts;
    this.report(
      portExpression,
      "lint/undeclared-port",
      `port ${port} is not open in the firewall of node ${node.name}: ${declared}${udp}. ` +
        (strict
          ? "Open it in the node's configuration (networking.firewall.allowedTCPPorts), or fix the number."
          : "If the test opens it at run time, ignore this; with strict ports it is an error."),
      strict ? "error" : "warning",
    );
  }

  private units(call: ts.CallExpression): void {
    const t = this.ts;
    if (!t.isPropertyAccessExpression(call.expression)) return;
    const method = call.expression.name.text;
    const argument = call.arguments[0];
    if (!UNIT_METHODS.has(method) || argument === undefined) return;
    const nodeName = this.literalName(call.expression.expression);
    const node = this.options.manifest.nodes.find((n) => n.name === nodeName);
    if (node === undefined) return;
    // Literals only: a RuntimeUnit or a computed name is the script's business.
    if (!t.isStringLiteralLike(argument)) return;
    const problem = unitProblem(node, this.options.manifest.nodes, argument.text, method);
    if (problem !== undefined) this.report(argument, "lint/unknown-unit", problem);
  }

  /** The node name a machine expression is typed with (`MachineOf<"server", …>` has `name: "server"`). */
  private literalName(expression: ts.Expression): string | undefined {
    const type = this.checker.getTypeAtLocation(expression);
    const name = type.getProperty("name");
    if (name === undefined) return undefined;
    const nameType = this.checker.getTypeOfSymbol(name);
    return nameType.isStringLiteral() ? nameType.value : undefined;
  }

  private isThenable(type: ts.Type): boolean {
    const parts = type.isUnion() ? type.types : [type];
    return parts.some((part) => {
      const then = part.getProperty("then");
      return then !== undefined && this.checker.getTypeOfSymbol(then).getCallSignatures().length > 0;
    });
  }

  private isPromiseArray(type: ts.Type): boolean {
    const parts = type.isUnion() ? type.types : [type];
    return parts.some(
      (part) =>
        (this.checker.isArrayType(part) || this.checker.isTupleType(part)) &&
        this.checker.getTypeArguments(part as ts.TypeReference).some((element) => this.isThenable(element)),
    );
  }

  /** `server.succeed(…)`: short enough for a message. */
  private describe(node: ts.Node): string {
    const t = this.ts;
    let text: string;
    if (t.isCallExpression(node)) {
      const callee = node.expression.getText(this.file).replace(/\s+/g, " ");
      text = `${callee}(${node.arguments.length > 0 ? "…" : ""})`;
    } else {
      text = node.getText(this.file).replace(/\s+/g, " ");
    }
    if (text.length > CALL_TEXT_MAX) text = `${text.slice(0, CALL_TEXT_MAX - 1)}…`;
    return `\`${text}\``;
  }
}

function skipParentheses(t: typeof ts, e: ts.Expression): ts.Expression {
  while (t.isParenthesizedExpression(e)) e = e.expression;
  return e;
}
