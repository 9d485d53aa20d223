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
import type { ContainerMachine, Machine } from "../runtime/index.js";

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

declare const nodeTypes: unique symbol;

/**
 * What the methods below read a node's units and ports from. The methods
 * take them from `this`, so every node shares one declaration of each
 * method: a call on a union of machines (`Object.values(machines)`) then
 * accepts what any of them declares, instead of making TypeScript intersect
 * the parameter types of 20 nodes (which it reports as "too complex").
 */
export interface NodeTypes<U extends string, P extends number> {
  /** Type-level only (wrapped, so that messages keep the names `ServerUnits`, `ServerPorts`). */
  readonly [nodeTypes]?: { readonly units: U; readonly ports: P };
}

/** The units a machine's node declares (`string` for a `TestMachine`). */
export type UnitOf<M> = M extends { readonly [nodeTypes]?: { readonly units: infer U } } ? U : never;
/** A port parameter: the node's declared ports complete first, any number is accepted (the check lints it). */
export type PortOf<M> = (M extends { readonly [nodeTypes]?: { readonly ports: infer P } } ? P : never) | (number & {});

type Typed = NodeTypes<string, number>;

// Each block exists only if the runtime's Machine has that method; it
// replaces the unit or port parameter and keeps the rest of the runtime's
// signature (options, result).

type WaitForUnit = Machine extends { waitForUnit(unit: string, ...rest: infer R): infer T }
  ? {
      /** Waits until the unit is active; fails at once if it fails. Units created at run time: `runtimeUnit("…")`. */
      waitForUnit<M extends Typed>(this: M, unit: UnitOf<M> | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type WaitForJob = Machine extends { waitForJob(unit: string, ...rest: infer R): infer T }
  ? {
      /** nixpkgs' alias of `waitForUnit`. */
      waitForJob<M extends Typed>(this: M, unit: UnitOf<M> | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type GetUnitInfo = Machine extends { getUnitInfo(unit: string, ...rest: infer R): infer T }
  ? {
      /** All properties of a unit (`systemctl show`). */
      getUnitInfo<M extends Typed>(this: M, unit: UnitOf<M> | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type GetUnitProperty = Machine extends { getUnitProperty(unit: string, ...rest: infer R): infer T }
  ? {
      /** One property of a unit (`systemctl show --property`). */
      getUnitProperty<M extends Typed>(this: M, unit: UnitOf<M> | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type RequireUnitState = Machine extends { requireUnitState(unit: string, ...rest: infer R): infer T }
  ? {
      /** Fails unless the unit's ActiveState is `state` (default `active`). */
      requireUnitState<M extends Typed>(this: M, unit: UnitOf<M> | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type StartJob = Machine extends { startJob(unit: string, ...rest: infer R): infer T }
  ? {
      /** `systemctl start <unit>`; returns its exit code and output. */
      startJob<M extends Typed>(this: M, unit: UnitOf<M> | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type StopJob = Machine extends { stopJob(unit: string, ...rest: infer R): infer T }
  ? {
      /** `systemctl stop <unit>`; returns its exit code and output. */
      stopJob<M extends Typed>(this: M, unit: UnitOf<M> | RuntimeUnit, ...rest: R): T;
    }
  : unknown;

type WaitForOpenPort = Machine extends { waitForOpenPort(port: number, ...rest: infer R): infer T }
  ? {
      /** Waits until something listens on the TCP port inside the guest. The node's declared TCP ports complete first. */
      waitForOpenPort<M extends Typed>(this: M, port: PortOf<M>, ...rest: R): T;
    }
  : unknown;

type WaitForClosedPort = Machine extends { waitForClosedPort(port: number, ...rest: infer R): infer T }
  ? {
      /** Waits until nothing listens on the TCP port inside the guest. */
      waitForClosedPort<M extends Typed>(this: M, port: PortOf<M>, ...rest: R): T;
    }
  : unknown;

type ForwardPort = Machine extends { forwardPort(options?: infer O): infer T }
  ? {
      /** Forwards a host TCP port to a guest port (default 8080 → 80). */
      forwardPort<M extends Typed>(this: M, options?: Omit<NonNullable<O>, "guestPort"> & { guestPort?: PortOf<M> }): T;
    }
  : unknown;

/** The methods whose unit or port parameter follows the node. */
export type TypedMethods = WaitForUnit &
  WaitForJob &
  GetUnitInfo &
  GetUnitProperty &
  RequireUnitState &
  StartJob &
  StopJob &
  WaitForOpenPort &
  WaitForClosedPort &
  ForwardPort;

/** What every node's machine has in common: the runtime's `Machine` with the typed methods. */
type MachineBase = Omit<Machine, TypedMembers> & TypedMethods;

/**
 * The machine of one node: the runtime's `Machine`, whose unit parameters
 * take only the node's units (templates `foo@.service` as
 * `` `foo@${string}.service` ``, or a `RuntimeUnit`) and whose port
 * parameters offer the node's declared TCP ports.
 *
 * An interface, not an intersection: TypeScript works out the members of
 * an intersection again for each node (and does so whenever it reduces a
 * union of them, e.g. `Object.values(machines)`), while an interface's
 * shared base is resolved once; with 20 nodes that was a fifth of the check.
 */
export interface MachineOf<N extends string, U extends string, P extends number> extends MachineBase, NodeTypes<U, P> {
  /** The node's name, as in `nodes.<name>` of the test. */
  readonly name: N;
}

/** What a container lacks (screen, keys, QEMU's monitor and QMP, NIC links): derived from the runtime's `ContainerMachine`. */
export type VmOnlyMembers = Exclude<keyof Machine, keyof ContainerMachine>;

/**
 * The machine of one container (`containers.<name>`): a `MachineOf` without
 * the VM-only methods, so `db.screenshot()` on a container is a type error at
 * the line that calls it.
 */
export interface ContainerOf<N extends string, U extends string, P extends number> extends Omit<MachineBase, VmOnlyMembers>, NodeTypes<U, P> {
  /** The node's name, as in `containers.<name>` of the test. */
  readonly name: N;
}

/** Any machine of the test: the parameter type for helpers that work on every node. */
export type TestMachine = MachineOf<string, string, number>;
