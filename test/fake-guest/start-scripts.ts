// Start scripts for fake guests (./qemu.ts): `run-<name>-vm` files that the
// driver runs exactly as it runs a real guest's, honouring the same contract.
import { chmod, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { shellQuote } from "../../lib/shell.js";

const FAKE_QEMU = join(dirname(fileURLToPath(import.meta.url)), "qemu.js");

export interface FakeGuest {
  name: string;
  /** Environment for this guest's fake QEMU (FAKE_GUEST_BOOT_MS, FAKE_GUEST_NO_SHELL). */
  env?: Record<string, string>;
}

/** Writes `run-<name>-vm` for each guest into `dir`; returns the paths by name. */
export async function writeFakeStartScripts(dir: string, guests: (FakeGuest | string)[]): Promise<Record<string, string>> {
  const scripts: Record<string, string> = {};
  for (const guest of guests.map((g) => (typeof g === "string" ? { name: g } : g))) {
    const path = join(dir, `run-${guest.name}-vm`);
    const env = Object.entries({ FAKE_GUEST_NAME: guest.name, ...guest.env }).map(([k, v]) => `${k}=${shellQuote(v)}`);
    await writeFile(
      path,
      `#!/bin/sh\n# A fake guest for the fast tests (test/fake-guest/qemu.ts).\nexec env ${env.join(" ")} ${shellQuote(process.execPath)} ${shellQuote(FAKE_QEMU)} "$@"\n`,
    );
    await chmod(path, 0o755);
    scripts[guest.name] = path;
  }
  return scripts;
}
