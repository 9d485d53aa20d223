/**
 * What a test script may use from Node without `@types/node` (the check runs
 * with `types: []` because @types/node triples its time): the console, timers,
 * abort signals, `process.env`, and Node's built-in modules as untyped (`any`).
 * With `--node-types` the check loads @types/node instead of this.
 */
export const SCRIPT_ENV_FILE = "nixos-test-ts.env.d.ts";

export const SCRIPT_ENV = `// DO NOT EDIT — written by nixos-test-ts: the Node globals a test script may use without @types/node.
// Node's built-in modules are untyped here; \`nixos-test-ts check --node-types\` types them.
declare module "node:*";

interface Console {
  log(...data: unknown[]): void;
  info(...data: unknown[]): void;
  warn(...data: unknown[]): void;
  error(...data: unknown[]): void;
  debug(...data: unknown[]): void;
}
declare var console: Console;

declare var process: {
  readonly env: Record<string, string | undefined>;
  readonly argv: string[];
  readonly pid: number;
  cwd(): string;
  [key: string]: any;
};

interface AbortSignal {
  readonly aborted: boolean;
  readonly reason: any;
  throwIfAborted(): void;
}
declare var AbortSignal: {
  prototype: AbortSignal;
  abort(reason?: any): AbortSignal;
  any(signals: AbortSignal[]): AbortSignal;
  timeout(milliseconds: number): AbortSignal;
};
interface AbortController {
  readonly signal: AbortSignal;
  abort(reason?: any): void;
}
declare var AbortController: { prototype: AbortController; new (): AbortController };

declare function setTimeout(callback: (...args: any[]) => void, ms?: number, ...args: any[]): any;
declare function clearTimeout(id: any): void;
declare function setInterval(callback: (...args: any[]) => void, ms?: number, ...args: any[]): any;
declare function clearInterval(id: any): void;
declare function queueMicrotask(callback: () => void): void;
`;
