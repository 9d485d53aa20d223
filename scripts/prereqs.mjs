// What each test tier needs from the machine, checked before the tier runs,
// so a missing piece is one clear line naming it and what to do — not seven
// tests failing with nix's or QEMU's own message. scripts/setup.sh provides
// all of it on a fresh Debian 12 machine.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const SETUP = "run scripts/setup.sh (as root, or with sudo)";

function has(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

function needCommands(problems, commands) {
  for (const [command, pkg] of commands) {
    if (!has(command)) problems.push(`${command} is missing (Debian package ${pkg}): ${SETUP}`);
  }
}

function needGuest(problems, repo, guest) {
  const r = spawnSync("bash", [join(repo, "test", "guests", "built.sh"), guest], { encoding: "utf8" });
  if (r.status !== 0) problems.push(`the ${guest} test guest is not built (or its recipe changed): ${SETUP}, or bash test/guests/${guest}/build.sh`);
}

/** Problems that keep `tier` from running here; empty when it can run. */
export function prerequisites(tier, repo) {
  const problems = [];
  if (!existsSync(join(repo, "node_modules", ".package-lock.json"))) problems.push("node_modules is missing: npm ci");
  if (!existsSync(join(repo, "dist", "test"))) problems.push("dist/ is missing: npm run build");
  if (tier === "e2e") {
    needCommands(problems, [
      ["qemu-system-x86_64", "qemu-system-x86"],
      ["vde_switch", "vde2"],
      ["tesseract", "tesseract-ocr"],
      ["convert", "imagemagick"],
      ["chromium", "chromium"],
      ["systemd-nspawn", "systemd-container"],
      ["nsenter", "util-linux"],
      ["vde_plug2tap", "vde2"],
    ]);
    if (process.getuid?.() !== 0) problems.push("the container tests need root (systemd-nspawn, network namespaces): run the e2e tier as root");
    needGuest(problems, repo, "tiny");
    needGuest(problems, repo, "systemd");
    needGuest(problems, repo, "container");
  }
  if (tier === "nix") {
    needCommands(problems, [
      ["nix", "nix-bin"],
      ["qemu-system-x86_64", "qemu-system-x86"],
    ]);
    if (has("nix")) {
      const config = spawnSync("nix", ["--extra-experimental-features", "nix-command", "show-config"], { encoding: "utf8" });
      const group = /^build-users-group = (.*)$/m.exec(config.stdout ?? "")?.[1]?.trim() ?? "";
      if (group !== "" && spawnSync("getent", ["group", group], { stdio: "ignore" }).status !== 0) {
        problems.push(`nix builds as the group '${group}' (build-users-group), which does not exist: run scripts/setup-nix.sh (part of scripts/setup.sh)`);
      }
    }
    if (process.getuid?.() !== 0 && process.env.NIX_REMOTE === undefined) {
      problems.push("test/nix builds with single-user nix, which needs root (or NIX_REMOTE=daemon with a running nix-daemon)");
    }
    needGuest(problems, repo, "tiny");
  }
  return problems;
}
