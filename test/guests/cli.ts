// Writes start scripts for hand-run experiments and shell-based tests:
//
//   node dist/test/guests/cli.js --out DIR [--guest tiny|systemd] [--memory MiB] \
//     [--kernel-param P]... machine1:1,2 machine2:1 server
//
// Each NODE is name[:vlan,vlan...]; without a colon the node has no vlans.
// Prints "name<TAB>script path" per node; build logs (first run) go to stderr.

import { parseArgs } from "node:util";
import { type GuestName, type GuestNode, writeStartScripts } from "./start-scripts.js";

const USAGE =
  "usage: cli.js --out DIR [--guest tiny|systemd] [--memory MiB] [--kernel-param P]... [--aslr] NODE...\n" +
  "  NODE is name[:vlan[,vlan...]], e.g. machine1:1,2 machine2:1 server\n" +
  "  --guest: the image every node boots (default tiny; see test/guests/README.md)\n" +
  "  --aslr: boot without norandmaps (address randomisation on, as NixOS guests)";

function parseNode(spec: string): GuestNode {
  const colon = spec.indexOf(":");
  if (colon < 0) return { name: spec, vlans: [] };
  const vlanText = spec.slice(colon + 1);
  const vlans =
    vlanText === ""
      ? []
      : vlanText.split(",").map((v) => {
          if (!/^\d+$/.test(v)) throw new Error(`${spec}: vlan ${JSON.stringify(v)} is not a number`);
          return Number(v);
        });
  return { name: spec.slice(0, colon), vlans };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      out: { type: "string" },
      guest: { type: "string" },
      memory: { type: "string" },
      "kernel-param": { type: "string", multiple: true },
      aslr: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.out === undefined || positionals.length === 0) {
    throw new Error(USAGE);
  }
  const memoryMiB = values.memory === undefined ? undefined : Number(values.memory);
  // writeStartScripts rejects other names with a message naming both guests.
  const guest = values.guest as GuestName | undefined;
  const scripts = await writeStartScripts(values.out, positionals.map(parseNode), {
    ...(guest === undefined ? {} : { guest }),
    ...(memoryMiB === undefined ? {} : { memoryMiB }),
    kernelParams: values["kernel-param"] ?? [],
    aslr: values.aslr === true,
  });
  for (const [name, path] of Object.entries(scripts)) {
    process.stdout.write(`${name}\t${path}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
