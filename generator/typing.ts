/**
 * The types a generated `test.generated.ts` is built from: a machine typed by
 * its node's units and ports. Test scripts see them as
 * `import type { … } from "nixos-test-ts/typing"` (the check maps that
 * specifier to this file's declarations); nothing here exists at run time.
 *
 * The signatures are derived from the runtime's `Machine`, so they follow it:
 * only the unit or port parameter is narrowed, options and results stay the
 * runtime's own. A method the runtime does not have is simply not there.
 */
import type { Machine } from "../runtime/index.js";

declare const runtimeUnitBrand: unique symbol;

/**
 * A unit name the manifest does not know: one created at run time (a
 * transient unit, a user unit, a unit from a package installed by the test).
 * Make one with `runtimeUnit("foo.service")`; every unit parameter takes it.
 */
export type RuntimeUnit = string & { readonly [runtimeUnitBrand]: "RuntimeUnit" };

/** A virtual network of the test (`vlan1`, …). */
export interface VLan {
  readonly nr: number;
}

/** Members of `Machine` that a node's machine replaces with typed versions. */
export type TypedMembers =
  | "name"
  | "waitForUnit"
  | "waitForJob"
  | "getUnitInfo"
  | "getUnitProperty"
  | "requireUnitState"
  | "startJob"
  | "stopJob"
  | "waitForOpenPort"
  | "waitForClosedPort"
  | "forwardPort";

/** A port parameter: the node's declared ports complete first, any number is accepted (the check lints it). */
export type Port<P extends number> = P | (number & {});

// Each block below exists only if the runtime's Machine has that method; it
// replaces the first parameter and keeps the rest of the runtime's signature.
// Method syntax (not properties) keeps the machines of different nodes
// assignable to `TestMachine`.

type WaitForUnit<U extends string> = Machine extends { waitForUnit(unit: string, ...rest: infer R): infer T }
  ? {
      /** Waits until the unit is active; fails at once if it fails. Units created at run time: `runtimeUnit("…")`. */
      waitForUnit(unit: U | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type WaitForJob<U extends string> = Machine extends { waitForJob(unit: string, ...rest: infer R): infer T }
  ? {
      /** nixpkgs' alias of `waitForUnit`. */
      waitForJob(unit: U | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type GetUnitInfo<U extends string> = Machine extends { getUnitInfo(unit: string, ...rest: infer R): infer T }
  ? {
      /** All properties of a unit (`systemctl show`). */
      getUnitInfo(unit: U | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type GetUnitProperty<U extends string> = Machine extends { getUnitProperty(unit: string, ...rest: infer R): infer T }
  ? {
      /** One property of a unit (`systemctl show --property`). */
      getUnitProperty(unit: U | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type RequireUnitState<U extends string> = Machine extends { requireUnitState(unit: string, ...rest: infer R): infer T }
  ? {
      /** Fails unless the unit's ActiveState is `state` (default `active`). */
      requireUnitState(unit: U | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type StartJob<U extends string> = Machine extends { startJob(unit: string, ...rest: infer R): infer T }
  ? {
      /** `systemctl start <unit>`; returns its exit code and output. */
      startJob(unit: U | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type StopJob<U extends string> = Machine extends { stopJob(unit: string, ...rest: infer R): infer T }
  ? {
      /** `systemctl stop <unit>`; returns its exit code and output. */
      stopJob(unit: U | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type WaitForOpenPort<P extends number> = Machine extends { waitForOpenPort(port: number, ...rest: infer R): infer T }
  ? {
      /** Waits until something listens on the TCP port inside the guest. The node's declared TCP ports complete first. */
      waitForOpenPort(port: Port<P>, ...rest: R): T;
    }
  : unknown;

type WaitForClosedPort<P extends number> = Machine extends { waitForClosedPort(port: number, ...rest: infer R): infer T }
  ? {
      /** Waits until nothing listens on the TCP port inside the guest. */
      waitForClosedPort(port: Port<P>, ...rest: R): T;
    }
  : unknown;

type ForwardPort<P extends number> = Machine extends { forwardPort(options?: infer O): infer T }
  ? {
      /** Forwards a host TCP port to a guest port (default 8080 → 80). */
      forwardPort(options?: Omit<NonNullable<O>, "guestPort"> & { guestPort?: Port<P> }): T;
    }
  : unknown;

/**
 * The machine of one node: the runtime's `Machine`, whose unit parameters
 * take only the node's units (templates `foo@.service` as
 * `` `foo@${string}.service` ``, or a `RuntimeUnit`) and whose port
 * parameters offer the node's declared TCP ports.
 */
export type MachineOf<N extends string, U extends string, P extends number> = Omit<Machine, TypedMembers> & {
  /** The node's name, as in `nodes.<name>` of the test. */
  readonly name: N;
} & WaitForUnit<U> &
  WaitForJob<U> &
  GetUnitInfo<U> &
  GetUnitProperty<U> &
  RequireUnitState<U> &
  StartJob<U> &
  StopJob<U> &
  WaitForOpenPort<P> &
  WaitForClosedPort<P> &
  ForwardPort<P>;

/** Any machine of the test: the parameter type for helpers that work on every node. */
export type TestMachine = MachineOf<string, string, number>;
