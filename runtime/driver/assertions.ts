/**
 * `t`: nixpkgs' assertion object (`t = AssertionTester()`, a
 * unittest.TestCase), with its method names, typed. A failed assertion
 * throws node:assert's AssertionError with unittest's message (the values
 * compared, and the caller's `msg` after them), which fails the test or
 * subtest like any error. `node:assert` itself works as well in scripts.
 */
import { AssertionError } from "node:assert";
import { isDeepStrictEqual, inspect } from "node:util";

const show = (value: unknown): string => inspect(value, { depth: 4, breakLength: Infinity });

function fail(message: string, msg: string | undefined, stackStart: (...args: never[]) => unknown): never {
  throw new AssertionError({ message: msg === undefined ? message : `${message} : ${msg}`, stackStartFn: stackStart });
}

/** Membership as Python's `in`: a substring, an element, a key of a Map or object, a member of a Set. */
function contains(container: unknown, member: unknown): boolean {
  if (typeof container === "string") return typeof member === "string" && container.includes(member);
  if (Array.isArray(container)) return container.some((x) => isDeepStrictEqual(x, member));
  if (container instanceof Set || container instanceof Map) return container.has(member);
  if (typeof container === "object" && container !== null) return Object.hasOwn(container, member as PropertyKey);
  return false;
}

function matches(text: string, pattern: RegExp | string): boolean {
  return (typeof pattern === "string" ? new RegExp(pattern) : pattern).test(text);
}

export const t = {
  /** `a` and `b` deeply equal (unittest compares with `==`, which is deep for lists and dicts). */
  assertEqual<T>(first: T, second: T, msg?: string): void {
    if (!isDeepStrictEqual(first, second)) fail(`${show(first)} != ${show(second)}`, msg, t.assertEqual);
  },
  assertNotEqual<T>(first: T, second: T, msg?: string): void {
    if (isDeepStrictEqual(first, second)) fail(`${show(first)} == ${show(second)}`, msg, t.assertNotEqual);
  },
  assertTrue(expr: unknown, msg?: string): void {
    if (!expr) fail(`${show(expr)} is not true`, msg, t.assertTrue);
  },
  assertFalse(expr: unknown, msg?: string): void {
    if (expr) fail(`${show(expr)} is not false`, msg, t.assertFalse);
  },
  assertIs(first: unknown, second: unknown, msg?: string): void {
    if (!Object.is(first, second)) fail(`${show(first)} is not ${show(second)}`, msg, t.assertIs);
  },
  assertIsNot(first: unknown, second: unknown, msg?: string): void {
    if (Object.is(first, second)) fail(`unexpectedly identical: ${show(first)}`, msg, t.assertIsNot);
  },
  /** Python's None is `null` or `undefined` here. */
  assertIsNone(value: unknown, msg?: string): void {
    if (value !== null && value !== undefined) fail(`${show(value)} is not None`, msg, t.assertIsNone);
  },
  assertIsNotNone(value: unknown, msg?: string): void {
    if (value === null || value === undefined) fail("unexpectedly None", msg, t.assertIsNotNone);
  },
  assertIn(member: unknown, container: unknown, msg?: string): void {
    if (!contains(container, member)) fail(`${show(member)} not found in ${show(container)}`, msg, t.assertIn);
  },
  assertNotIn(member: unknown, container: unknown, msg?: string): void {
    if (contains(container, member)) fail(`${show(member)} unexpectedly found in ${show(container)}`, msg, t.assertNotIn);
  },
  assertIsInstance(value: unknown, cls: abstract new (...args: never[]) => unknown, msg?: string): void {
    if (!(value instanceof cls)) fail(`${show(value)} is not an instance of ${cls.name}`, msg, t.assertIsInstance);
  },
  assertGreater(a: number | bigint | string, b: number | bigint | string, msg?: string): void {
    if (!(a > b)) fail(`${show(a)} not greater than ${show(b)}`, msg, t.assertGreater);
  },
  assertGreaterEqual(a: number | bigint | string, b: number | bigint | string, msg?: string): void {
    if (!(a >= b)) fail(`${show(a)} not greater than or equal to ${show(b)}`, msg, t.assertGreaterEqual);
  },
  assertLess(a: number | bigint | string, b: number | bigint | string, msg?: string): void {
    if (!(a < b)) fail(`${show(a)} not less than ${show(b)}`, msg, t.assertLess);
  },
  assertLessEqual(a: number | bigint | string, b: number | bigint | string, msg?: string): void {
    if (!(a <= b)) fail(`${show(a)} not less than or equal to ${show(b)}`, msg, t.assertLessEqual);
  },
  /** unittest's default: equal after rounding the difference to 7 places. */
  assertAlmostEqual(first: number, second: number, places = 7, msg?: string): void {
    if (Math.round(Math.abs(first - second) * 10 ** places) !== 0) fail(`${first} != ${second} within ${places} places`, msg, t.assertAlmostEqual);
  },
  /** A string pattern is a JavaScript regular expression (Python's `(?P<n>…)` is `(?<n>…)` here). */
  assertRegex(text: string, pattern: RegExp | string, msg?: string): void {
    if (!matches(text, pattern)) fail(`Regex didn't match: ${show(String(pattern))} not found in ${show(text)}`, msg, t.assertRegex);
  },
  assertNotRegex(text: string, pattern: RegExp | string, msg?: string): void {
    if (matches(text, pattern)) fail(`Regex matched: ${show(String(pattern))} found in ${show(text)}`, msg, t.assertNotRegex);
  },
  /** The same elements, in any order. */
  assertCountEqual<T>(first: Iterable<T>, second: Iterable<T>, msg?: string): void {
    const rest = [...second];
    const missing: T[] = [];
    for (const x of first) {
      const i = rest.findIndex((y) => isDeepStrictEqual(x, y));
      if (i === -1) missing.push(x);
      else rest.splice(i, 1);
    }
    if (missing.length > 0 || rest.length > 0)
      fail(`Element counts were not equal: first has ${show(missing)} more, second has ${show(rest)} more`, msg, t.assertCountEqual);
  },
  /**
   * `with self.assertRaises(E):` is `await t.assertRaises(E, async () => …)`:
   * resolves with the error when `fn` throws an `E`, fails otherwise.
   */
  async assertRaises<E extends Error>(cls: abstract new (...args: never[]) => E, fn: () => unknown, msg?: string): Promise<E> {
    try {
      await fn();
    } catch (error) {
      if (error instanceof cls) return error;
      throw error;
    }
    return fail(`${cls.name} not raised`, msg, t.assertRaises);
  },
  fail(msg = "fail"): never {
    return fail(msg, undefined, t.fail);
  },
} as const;

export type Assertions = typeof t;
