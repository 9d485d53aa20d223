import { CommandFailedError, MachineError, UnitFailedError } from "../errors.js";
import { retry } from "../driver/polling.js";
import type { Machine } from "./machine.js";
import { PROBE_TIMEOUT } from "./options.js";
import { shellQuote } from "../../lib/shell.js";
import type { CommandOptions, WaitOptions } from "./options.js";

export interface UnitOptions {
  /** Ask the user's systemd instance (`systemctl --user` as that user) instead of the system's. */
  user?: string;
}

/** systemd methods, as nixpkgs' Python driver has them. */
export class Systemd {
  constructor(private readonly m: Machine) {}

  /** Runs `systemctl <args>` (for a user: as that user, against their manager); never throws for the exit code. */
  async systemctl(args: string, options: UnitOptions & CommandOptions = {}): Promise<{ exitCode: number; output: string }> {
    const command =
      options.user === undefined
        ? `systemctl ${args}`
        : `su -l ${shellQuote(options.user)} --shell /bin/sh -c ${shellQuote(`XDG_RUNTIME_DIR=/run/user/$(id -u) systemctl --user ${args}`)}`;
    const r = await this.m.execute(command, options);
    return { exitCode: r.exitCode, output: r.output };
  }

  /** All properties of a unit (`systemctl show`). */
  async getUnitInfo(unit: string, options: UnitOptions = {}): Promise<Record<string, string>> {
    return this.m.api(async () => {
      const r = await this.systemctl(`--no-pager show ${shellQuote(unit)}`, options);
      if (r.exitCode !== 0) throw new CommandFailedError(this.m.name, `systemctl show ${unit}`, r.exitCode, r.output);
      const info: Record<string, string> = {};
      for (const line of r.output.split("\n")) {
        const m = /^([^=]+)=(.*)$/.exec(line);
        if (m !== null) info[m[1] as string] = m[2] as string;
      }
      return info;
    });
  }

  async getUnitProperty(unit: string, property: string, options: UnitOptions = {}): Promise<string> {
    return this.m.api(async () => {
      const r = await this.systemctl(`--no-pager show ${shellQuote(unit)} --property=${shellQuote(property)}`, options);
      if (r.exitCode !== 0) throw new CommandFailedError(this.m.name, `systemctl show ${unit} --property=${property}`, r.exitCode, r.output);
      const m = new RegExp(`^${property}=(.*)$`, "m").exec(r.output);
      if (m === null) throw new MachineError(this.m.name, `systemctl show ${unit} did not report property ${property}`);
      return m[1] as string;
    });
  }

  /** Fails unless the unit's ActiveState is `state` (default `active`). */
  async requireUnitState(unit: string, state = "active", options: UnitOptions = {}): Promise<void> {
    await this.m.api(async () => {
      const actual = await this.getUnitProperty(unit, "ActiveState", options);
      if (actual !== state)
        throw new MachineError(this.m.name, `expected unit ${unit} to be in state '${state}' but it is in state '${actual}'`, { code: "NTT_UNIT_STATE" });
    });
  }

  /**
   * Waits until the unit is active. Fails at once when it enters `failed`, or
   * is inactive with no job pending, with `systemctl status` and its last
   * journal lines in the error.
   */
  async waitForUnit(unit: string, options: UnitOptions & WaitOptions = {}): Promise<void> {
    await this.m.api(() =>
      this.m.logger.nested(`waiting for unit ${unit}${options.user ? ` (user ${options.user})` : ""}`, { machine: this.m.name }, async () => {
        let failure: UnitFailedError | undefined;
        await retry(
          async () => {
            const state = await this.getUnitProperty(unit, "ActiveState", options);
            if (state === "failed") failure = await this.unitFailure(unit, "entered the failed state", options);
            if (state === "inactive") {
              const jobs = await this.systemctl("list-jobs --full 2>&1", options);
              const stillInactive = (await this.getUnitProperty(unit, "ActiveState", options)) === "inactive";
              if (jobs.output.includes("No jobs") && stillInactive)
                failure = await this.unitFailure(unit, "is inactive and there are no pending jobs", options);
            }
            if (failure !== undefined) throw failure;
            return state === "active";
          },
          { ...options, what: `waiting for unit ${unit}`, machine: this.m.name },
        );
      }),
    );
  }

  /**
   * nixpkgs' `switch_root`: from the initrd (`testing.initrdBackdoor` with a
   * systemd initrd) to stage 2. Waits for initrd.target, isolates
   * initrd-switch-root.target without waiting for the answer (the shell
   * dies with the initrd), waits for systemd's "Switching root." and then
   * for stage 2's backdoor shell, which the driver sets up anew.
   */
  async switchRoot(options: WaitOptions = {}): Promise<void> {
    await this.m.api(() =>
      this.m.logger.nested("switching root", { machine: this.m.name }, async () => {
        await this.waitForUnit("initrd.target", options);
        const before = this.m.shellRestarts();
        await this.m.execute("systemctl isolate --no-block initrd-switch-root.target 2>/dev/null >/dev/null", { checkOutput: false });
        await this.m.waitForConsoleText(/systemd\[1\]:.*Switching root\./, options);
        await this.m.waitForShellRestart(before, options);
      }),
    );
  }

  async startJob(unit: string, options: UnitOptions = {}): Promise<{ exitCode: number; output: string }> {
    return this.systemctl(`start ${shellQuote(unit)}`, options);
  }

  async stopJob(unit: string, options: UnitOptions = {}): Promise<{ exitCode: number; output: string }> {
    return this.systemctl(`stop ${shellQuote(unit)}`, options);
  }

  /** Waits for a job (unit) to be active; nixpkgs' alias of `waitForUnit`. */
  async waitForJob(unit: string, options: UnitOptions & WaitOptions = {}): Promise<void> {
    await this.waitForUnit(unit, options);
  }

  private async unitFailure(unit: string, why: string, options: UnitOptions): Promise<UnitFailedError> {
    const status = await this.systemctl(`--no-pager status ${shellQuote(unit)} 2>&1`, options).catch(() => ({ output: "" }));
    const journal = await this.m.execute(`journalctl --no-pager -n 20 -u ${shellQuote(unit)} 2>&1`, { timeout: PROBE_TIMEOUT }).catch(() => ({ output: "" }));
    return new UnitFailedError(this.m.name, unit, why, status.output, journal.output);
  }
}
