import { UsageError } from "../errors.js";
import type { Machine } from "./machine.js";

/** Network methods: they act on QEMU's NICs, not inside the guest. */
export class Network {
  constructor(private readonly m: Machine) {}

  /**
   * Cuts the machine off its first vlan (QEMU `set_link … off` on the first
   * vlan NIC; eth0, the user-mode NIC, stays up), as nixpkgs does.
   */
  async block(): Promise<void> {
    await this.m.api(() => this.m.logger.nested("blocking the network", { machine: this.m.name }, () => this.setLink(false)));
  }

  async unblock(): Promise<void> {
    await this.m.api(() => this.m.logger.nested("unblocking the network", { machine: this.m.name }, () => this.setLink(true)));
  }

  /** Forwards a host TCP port to a guest port over the user-mode NIC (`hostfwd_add`); defaults 8080 → 80, as nixpkgs. */
  async forwardPort(options: { hostPort?: number; guestPort?: number } = {}): Promise<void> {
    const hostPort = options.hostPort ?? 8080;
    const guestPort = options.guestPort ?? 80;
    for (const p of [hostPort, guestPort]) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new UsageError(`forwardPort: ports are integers from 1 to 65535, got ${String(p)}`);
    }
    await this.m.api(async () => {
      const answer = await this.m.sendMonitorCommand(`hostfwd_add tcp::${hostPort}-:${guestPort}`);
      if (answer.trim() !== "") throw new UsageError(`${this.m.name}: forwarding host port ${hostPort} to guest port ${guestPort} failed: ${answer.trim()}`);
    });
  }

  private async setLink(up: boolean): Promise<void> {
    // The first virtio NIC is eth0 (user-mode networking); the second is the first vlan's.
    const answer = await this.m.sendMonitorCommand(`set_link virtio-net-pci.1 ${up ? "on" : "off"}`);
    if (answer.trim() !== "")
      throw new UsageError(`${this.m.name}: cannot ${up ? "unblock" : "block"} the network (is the machine on a vlan?): ${answer.trim()}`);
  }
}
