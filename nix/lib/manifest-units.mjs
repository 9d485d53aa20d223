// Build step of nix/lib/driver.nix: completes the units of an evaluated
// manifest with the unit files in each node's unit directories (for NixOS,
// <toplevel>/etc/systemd/system). `systemd.units` only holds the units the
// configuration declares; the units systemd and packages ship (sshd.service
// from openssh, getty@.service, default.target, ...) are only there.
//
//   node manifest-units.mjs <manifest.json> <unit-dirs.json> <out.json>
//
// unit-dirs.json: { "<node>": ["/nix/store/…-system/etc/systemd/system", …] }.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";

// The unit names lib/manifest.ts accepts: foo.service, getty@.service, …
// (not the foo.service.d/ or multi-user.target.wants/ directories beside them).
const UNIT = /^[^\s/]+\.(?:service|socket|target|device|mount|automount|swap|path|timer|slice|scope)$/;

const [manifestPath, dirsPath, outPath] = process.argv.slice(2);
if (outPath === undefined) {
  console.error("usage: manifest-units.mjs <manifest.json> <unit-dirs.json> <out.json>");
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
const unitDirs = JSON.parse(readFileSync(dirsPath, "utf8"));

for (const [node, dirs] of Object.entries(unitDirs)) {
  const entry = manifest.nodes[node];
  if (entry === undefined) throw new Error(`unit directories for ${node}, which is not a node of the test`);
  const units = new Set(entry.units);
  for (const dir of dirs) {
    let names;
    try {
      names = readdirSync(dir);
    } catch (error) {
      throw new Error(`node ${node}: cannot list the unit directory ${dir}: ${error.message}`);
    }
    for (const name of names) if (UNIT.test(name)) units.add(name);
  }
  // Code-unit order, as Nix sorts strings and lib/manifest.ts sorts units.
  entry.units = [...units].sort();
}
writeFileSync(outPath, `${JSON.stringify(manifest, null, 2)}\n`);
