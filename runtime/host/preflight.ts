import { accessSync, constants, openSync, readSync, closeSync, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { ConfigError } from "../errors.js";

/** Looks a program up on PATH, as the shell would. */
export function which(program: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const QEMU = /(?:^|[\s"'=])((?:\/[^\s"'$]*\/)?(qemu-system-[A-Za-z0-9_]+|qemu-kvm))(?=[\s"';]|$)/m;

/**
 * Fails before any VM starts when a tool the test needs is missing, saying
 * what to install. A start script is a shell script; the QEMU it runs is
 * found by reading it (nixpkgs' scripts name it by store path, ours by name).
 */
export function checkHostTools(
  startScripts: ReadonlyArray<{ name: string; startScript: string }>,
  vlans: readonly number[],
  containers: ReadonlyArray<{ name: string; startScript: string }> = [],
): void {
  if (containers.length > 0)
    checkContainerTools(
      containers.map((c) => c.name),
      vlans,
    );
  if (vlans.length > 0 && which("vde_switch") === undefined) {
    throw new ConfigError(`vlans ${vlans.join(", ")} need vde_switch, which is not on PATH: install vde2 (Debian: apt-get install vde2; Nix: pkgs.vde2)`);
  }
  for (const { name, startScript } of startScripts) {
    const path = startScript.trim().split(/\s+/)[0] ?? "";
    const m = QEMU.exec(head(path));
    if (m === null) continue; // not a script we can read: QEMU's own error will tell
    const binary = m[1] as string;
    const found = binary.startsWith("/") ? exists(binary) : which(binary) !== undefined;
    if (!found) {
      throw new ConfigError(
        `the start script of machine ${name} (${path}) runs ${binary}, which is ${binary.startsWith("/") ? "missing" : "not on PATH"}: ` +
          "install QEMU (Debian: apt-get install qemu-system-x86; Nix: pkgs.qemu)",
      );
    }
  }
}

function head(path: string): string {
  try {
    const fd = openSync(path, "r");
    try {
      const buffer = Buffer.alloc(64 * 1024);
      const n = readSync(fd, buffer, 0, buffer.length, 0);
      const text = buffer.toString("utf8", 0, n);
      return text.includes("\0") ? "" : text; // a binary, not a script
    } finally {
      closeSync(fd);
    }
  } catch {
    return "";
  }
}

function exists(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Containers need root and three tools: systemd-nspawn (their start scripts
 * run it), nsenter (every command) and, on a vlan, vde_plug2tap (the vlan's
 * tap on the bridge the containers' veths join, so VMs and containers meet).
 */
export function checkContainerTools(names: readonly string[], vlans: readonly number[], euid = process.geteuid?.() ?? 0): void {
  const what = `container${names.length > 1 ? "s" : ""} ${names.join(", ")}`;
  if (euid !== 0) {
    throw new ConfigError(`${what}: systemd-nspawn containers need root; run the driver as root (in a Nix build: the sandbox's root, or sudo)`);
  }
  const tools: Array<[string, string]> = [
    ["systemd-nspawn", "systemd-container (Debian: apt-get install systemd-container; Nix: pkgs.systemd)"],
    ["nsenter", "util-linux (Debian: apt-get install util-linux; Nix: pkgs.util-linux)"],
    ...(vlans.length > 0 ? [["vde_plug2tap", "vde2 (Debian: apt-get install vde2; Nix: pkgs.vde2)"] as [string, string]] : []),
  ];
  for (const [tool, pkg] of tools) {
    if (which(tool) === undefined) throw new ConfigError(`${what}: ${tool} is not on PATH: install ${pkg}`);
  }
}
