// Generates nixpkgs-style `run-<name>-vm` start scripts for the test guests,
// so the driver can be exercised end to end without Nix: it starts these
// scripts exactly as it would start the scripts of a NixOS test.
//
// The scripts honour the environment contract of nixpkgs' qemu-vm.nix:
// TMPDIR/USE_TMPDIR, SHARED_DIR, QEMU_OPTS, QEMU_KERNEL_PARAMS, QEMU_NET_OPTS
// and QEMU_VDE_SOCKET_<vlan>, and for the systemd guest NIX_DISK_IMAGE; the
// driver appends its own QEMU arguments (-serial, -chardev for the backdoor,
// -no-reboot, ...) through "$@".
//
// Guests (test/guests/README.md): "tiny" (kernel + initramfs, busybox init)
// and "systemd" (Debian with systemd on an ext4 disk image).

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface GuestNode {
  name: string;
  /** vlan numbers in interface order: the k-th one becomes eth<k>. */
  vlans: number[];
}

export type GuestName = "tiny" | "systemd" | "container";

export interface StartScriptOptions {
  /** The guest image every node boots; "tiny" by default. */
  guest?: GuestName;
  /** -m for every node; 512 MiB for "tiny", 1024 MiB (NixOS' default) for "systemd". */
  memoryMiB?: number;
  /** Extra kernel parameters baked into every script, before $QEMU_KERNEL_PARAMS. */
  kernelParams?: string[];
  /**
   * Address-space randomisation in the guest. Off by default (`norandmaps`):
   * under TCG every exec with randomised addresses re-translates its code, and
   * the suite boots hundreds of guests. NixOS guests keep it on, so whatever
   * measures the command path against NixOS-like costs (bench/backdoor.ts)
   * boots with `aslr: true`.
   */
  aslr?: boolean;
  /**
   * "tiny" only: boot Debian's bzImage, whose real-mode setup hands the VGA
   * text mode to the kernel, so tty1 is on the screen (screenshots, OCR). The
   * default, the unpacked kernel through QEMU's PVH entry, boots ~4 s faster
   * under TCG but leaves the screen as the firmware left it.
   */
  vgaText?: boolean;
}

/** Where one node sits on the test network, numbered the way nixpkgs does. */
interface NodeLayout {
  name: string;
  /** 1-based position among all node names, sorted. */
  number: number;
  interfaces: { device: string; vlan: number; address: string; mac: string }[];
}

const DEFAULT_MEMORY_MIB: Record<GuestName, number> = { tiny: 512, systemd: 1024, container: 0 };

/** The files build.sh leaves in a complete guest directory. */
const GUEST_FILES: Record<GuestName, string[]> = {
  tiny: ["kernel", "vmlinuz", "initrd.gz", "done"],
  systemd: ["kernel", "initrd.img", "root.img", "done"],
  container: ["rootfs", "done"],
};

function checkGuest(guest: string): GuestName {
  if (guest !== "tiny" && guest !== "systemd" && guest !== "container") {
    throw new Error(`guest ${JSON.stringify(guest)}: use "tiny", "systemd" or "container"`);
  }
  return guest;
}

// Names end up in shell words, QEMU's -name, the kernel command line (where
// ',' and ':' separate entries) and /etc/hosts: allow hostname characters only.
const NODE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$/;

/** Finds the recipe next to the TypeScript sources, from src/ or dist/ alike. */
function findBuildScript(guest: GuestName): string {
  const relative = join("test", "guests", guest, "build.sh");
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, relative);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(`cannot find ${relative} above ${fileURLToPath(import.meta.url)}`);
    }
    dir = parent;
  }
}

/**
 * Builds the guest unless the cache already holds it (then this takes a few
 * milliseconds) and returns its directory: kernel and initrd.gz for "tiny";
 * kernel, initrd.img and root.img for "systemd".
 */
export async function buildGuest(guest: GuestName = "tiny"): Promise<string> {
  const script = findBuildScript(checkGuest(guest));
  const stdout = await new Promise<string>((resolvePromise, reject) => {
    const child = execFile("bash", [script], { maxBuffer: 16 * 1024 * 1024, encoding: "utf8" }, (error, out, err) => {
      if (error) {
        const log = err.trim().split("\n").slice(-20).join("\n");
        reject(new Error(`${script} failed (${error.message.split("\n")[0]}):\n${log}`));
      } else {
        resolvePromise(out);
      }
    });
    // A first build downloads 80-120 MB: show its progress instead of going quiet.
    child.stderr?.on("data", (chunk: string) => process.stderr.write(chunk));
  });
  const lines = stdout.trim().split("\n");
  const dir = lines[lines.length - 1] ?? "";
  for (const file of GUEST_FILES[guest]) {
    if (!dir.startsWith("/") || !existsSync(join(dir, file))) {
      throw new Error(`${script} printed ${JSON.stringify(dir)}, which has no ${file}`);
    }
  }
  return dir;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** Validates the nodes and numbers them like nixpkgs' testing/network.nix. */
export function layoutNodes(nodes: GuestNode[]): NodeLayout[] {
  const names = nodes.map((n) => n.name);
  for (const node of nodes) {
    if (!NODE_NAME.test(node.name)) {
      throw new Error(`node name ${JSON.stringify(node.name)}: use letters, digits, '-' and '_'`);
    }
    if (names.indexOf(node.name) !== names.lastIndexOf(node.name)) {
      throw new Error(`node name ${node.name} appears twice`);
    }
    const seen = new Set<number>();
    for (const vlan of node.vlans) {
      // The vlan number is a byte of the MAC address and an octet of the IP.
      if (!Number.isInteger(vlan) || vlan < 0 || vlan > 255) {
        throw new Error(`node ${node.name}: vlan ${vlan} is not an integer in 0..255`);
      }
      if (seen.has(vlan)) throw new Error(`node ${node.name}: vlan ${vlan} listed twice`);
      seen.add(vlan);
    }
  }
  if (nodes.length > 254) throw new Error(`${nodes.length} nodes: at most 254 fit in a /24`);

  // Code-unit order, like Nix's attribute name order (not localeCompare).
  const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sorted.map((node, index) => {
    const number = index + 1;
    return {
      name: node.name,
      number,
      interfaces: node.vlans.map((vlan, k) => ({
        device: `eth${k + 1}`,
        vlan,
        address: `192.168.${vlan}.${number}`,
        mac: `52:54:00:12:${hex2(vlan)}:${hex2(number)}`,
      })),
    };
  });
}

/** Single-quotes a string for bash. */
function sh(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A machine-id per node (systemd.machine_id=): stable across runs, distinct between nodes. */
function machineId(name: string): string {
  return createHash("sha256").update(`nixos-test-ts machine ${name}`).digest("hex").slice(0, 32);
}

/** What differs between the guests in a start script. */
interface GuestBoot {
  kernelParams: string[];
  /** Shell lines before the TMPDIR set-up (nixpkgs creates the disk there too). */
  prelude: string;
  /** QEMU arguments after the vlan NICs, one line each, each ending in " \\". */
  qemuArgs: string;
}

function guestBoot(guest: GuestName, node: NodeLayout, guestDir: string, vgaText: boolean): GuestBoot {
  if (guest === "tiny") {
    return {
      kernelParams: [],
      prelude: "",
      qemuArgs: `  -kernel ${sh(join(guestDir, vgaText ? "vmlinuz" : "kernel"))} \\\n` + `  -initrd ${sh(join(guestDir, "initrd.gz"))} \\\n`,
    };
  }
  const disk = `./${node.name}.qcow2`;
  return {
    kernelParams: [
      "root=/dev/vda",
      "rootfstype=ext4",
      "rw",
      "fsck.mode=skip",
      "net.ifnames=0",
      // PID 1 names the host before any unit runs (ntt-network.service sets
      // the same from ntt.hostname), so every journal line carries it.
      `systemd.hostname=${node.name}`,
      `systemd.machine_id=${machineId(node.name)}`,
    ],
    prelude: `
# The root disk, as nixpkgs' NIX_DISK_IMAGE: a qcow2 overlay of the guest's
# read-only image, created in the current directory (the driver's VM state
# directory) when missing, so it survives a restart of the VM.
disk_image=\${NIX_DISK_IMAGE:-${disk}}
if ! NIX_DISK_IMAGE=$(readlink -f "$disk_image"); then
  echo "run-${node.name}-vm: cannot resolve the disk image path $disk_image (does its directory exist?)" >&2
  exit 1
fi
if ! test -e "$NIX_DISK_IMAGE"; then
  echo "Disk image do not exist, creating the virtualisation disk image..."
  qemu-img create -q -f qcow2 -F raw -b ${sh(join(guestDir, "root.img"))} "$NIX_DISK_IMAGE"
  echo "Virtualisation disk image created."
fi
disk_image=\${NIX_DISK_IMAGE//,/,,}
`,
    qemuArgs:
      `  -drive cache=writeback,file="$disk_image",id=drive1,if=none,index=1,werror=report \\\n` +
      `  -device virtio-blk-pci,bootindex=1,drive=drive1,serial=root \\\n` +
      // std VGA = the bochs display driver in the guest; QMP screendump works
      // also when the driver adds -nographic.
      `  -vga std \\\n` +
      `  -kernel ${sh(join(guestDir, "kernel"))} \\\n` +
      `  -initrd ${sh(join(guestDir, "initrd.img"))} \\\n`,
  };
}

function renderScript(
  guest: GuestName,
  node: NodeLayout,
  all: NodeLayout[],
  guestDir: string,
  memoryMiB: number,
  extraKernelParams: string[],
  aslr: boolean,
  vgaText: boolean,
): string {
  const scriptName = `run-${node.name}-vm`;
  const boot = guestBoot(guest, node, guestDir, vgaText);
  const hosts = all.flatMap((n) => {
    const primary = n.interfaces[0];
    return primary ? [`${primary.address}:${n.name}`] : [];
  });
  const kernelParams = [
    "console=ttyS0",
    "panic=1",
    ...(aslr ? [] : ["norandmaps"]),
    "quiet",
    "loglevel=4",
    `ntt.hostname=${node.name}`,
    ...(node.interfaces.length > 0 ? [`ntt.ip=${node.interfaces.map((i) => `${i.device}:${i.address}/24`).join(",")}`] : []),
    ...(hosts.length > 0 ? [`ntt.hosts=${hosts.join(",")}`] : []),
    ...boot.kernelParams,
    ...extraKernelParams,
  ].join(" ");

  const vdeChecks = node.interfaces.map(
    ({ vlan }) =>
      `if [ -z "\${QEMU_VDE_SOCKET_${vlan}:-}" ]; then\n` +
      `  echo ${sh(
        `${scriptName}: QEMU_VDE_SOCKET_${vlan} is not set: vlan ${vlan} needs a running vde_switch ` +
          `(start the VM through the driver with vlans [${vlan}])`,
      )} >&2\n` +
      `  exit 1\n` +
      `fi\n`,
  );
  const vlanArgs = node.interfaces.map(
    ({ vlan, mac }) => `  -device virtio-net-pci,netdev=vlan${vlan},mac=${mac} ` + `-netdev vde,id=vlan${vlan},sock="$QEMU_VDE_SOCKET_${vlan}" \\\n`,
  );

  return `#!/usr/bin/env bash
# Start script for node ${node.name} (node number ${node.number}) of a nixos-test-ts test,
# generated by test/guests/start-scripts.ts for the "${guest}" guest in
# ${guestDir}
# Environment contract as nixpkgs' run-<name>-vm: TMPDIR/USE_TMPDIR, SHARED_DIR,
# QEMU_OPTS, QEMU_KERNEL_PARAMS, QEMU_NET_OPTS, QEMU_VDE_SOCKET_<vlan>${guest === "tiny" ? "" : ",\n# NIX_DISK_IMAGE"}.
set -e

${vdeChecks.join("")}${boot.prelude}
# Unless the caller insists on its TMPDIR (USE_TMPDIR), every VM gets a fresh one.
if [ -z "$TMPDIR" ] || [ -z "$USE_TMPDIR" ]; then
  TMPDIR=$(mktemp -d nix-vm.XXXXXXXXXX --tmpdir)
fi
cd "$TMPDIR"
mkdir -p "$TMPDIR/xchg"

shared_dir=\${SHARED_DIR:-$TMPDIR/xchg}
xchg_dir=$TMPDIR/xchg
# In QEMU's option syntax a ',' in a value is written ',,'.
shared_dir=\${shared_dir//,/,,}
xchg_dir=\${xchg_dir//,/,,}

kernel_params=${sh(kernelParams)}

# QEMU_OPTS is word-split on purpose, as in nixpkgs.
# shellcheck disable=SC2086
exec qemu-system-x86_64 \\
  -name ${sh(node.name)} \\
  -m ${memoryMiB} \\
  -smp 1 \\
  -machine accel=tcg \\
  -cpu max \\
  -device virtio-rng-pci \\
  -net nic,netdev=user.0,model=virtio \\
  -netdev "user,id=user.0\${QEMU_NET_OPTS:+,$QEMU_NET_OPTS}" \\
  -virtfs local,path="$shared_dir",security_model=none,mount_tag=shared \\
  -virtfs local,path="$xchg_dir",security_model=none,mount_tag=xchg \\
${vlanArgs.join("")}${boot.qemuArgs}  -append "$kernel_params\${QEMU_KERNEL_PARAMS:+ $QEMU_KERNEL_PARAMS}" \\
  $QEMU_OPTS \\
  "$@"
`;
}

/**
 * Writes <outDir>/run-<name>-vm for every node (building the guest first if
 * needed) and returns name -> absolute script path.
 */
export async function writeStartScripts(outDir: string, nodes: GuestNode[], options: StartScriptOptions = {}): Promise<Record<string, string>> {
  const guest = checkGuest(options.guest ?? "tiny");
  const memoryMiB = options.memoryMiB ?? DEFAULT_MEMORY_MIB[guest];
  if (!Number.isInteger(memoryMiB) || memoryMiB < 64) {
    throw new Error(`memoryMiB ${memoryMiB}: need an integer >= 64`);
  }
  const kernelParams = options.kernelParams ?? [];
  for (const param of kernelParams) {
    if (param === "" || /\s/.test(param)) {
      throw new Error(`kernel parameter ${JSON.stringify(param)}: one non-empty word each`);
    }
  }
  const layout = layoutNodes(nodes);
  const guestDir = await buildGuest(guest);
  const dir = resolve(outDir);
  await mkdir(dir, { recursive: true });

  const scripts: Record<string, string> = {};
  for (const node of layout) {
    const path = join(dir, `run-${node.name}-vm`);
    // Write-then-rename: a driver starting the previous script never sees half a file.
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, renderScript(guest, node, layout, guestDir, memoryMiB, kernelParams, options.aslr === true, options.vgaText === true));
    await chmod(tmp, 0o755);
    await rename(tmp, path);
    scripts[node.name] = path;
  }
  return scripts;
}

/**
 * Writes <outDir>/run-<name>-nspawn for every container (building the
 * container guest first if needed) and returns name -> script path. `vms`
 * are the test's VMs: numbering and /etc/hosts cover VMs and containers
 * together, as nixpkgs' network.nix numbers all machines.
 */
export async function writeNspawnStartScripts(outDir: string, containers: GuestNode[], vms: GuestNode[] = []): Promise<Record<string, string>> {
  const layout = layoutNodes([...vms, ...containers]);
  const guestDir = await buildGuest("container");
  const dir = resolve(outDir);
  await mkdir(dir, { recursive: true });
  const scripts: Record<string, string> = {};
  for (const container of containers) {
    const node = layout.find((n) => n.name === container.name) as NodeLayout;
    const path = join(dir, `run-${node.name}-nspawn`);
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, renderNspawnScript(node, layout, guestDir));
    await chmod(tmp, 0o755);
    await rename(tmp, path);
    scripts[node.name] = path;
  }
  return scripts;
}

/** A host-side interface name: at most 15 bytes (IFNAMSIZ), unique per container and device. */
function hostVeth(node: NodeLayout, device: string): string {
  const plain = `${node.name}-${device}`;
  return plain.length <= 15 ? plain : `ntt${node.number}-${device}`;
}

function renderNspawnScript(node: NodeLayout, all: NodeLayout[], guestDir: string): string {
  const scriptName = `run-${node.name}-nspawn`;
  const hosts = all.flatMap((n) => {
    const primary = n.interfaces[0];
    return primary ? [`${primary.address}:${n.name}`] : [];
  });
  const network =
    `hostname=${sh(node.name)}\n` + `ip=${sh(node.interfaces.map((i) => `${i.device}:${i.address}/24`).join(","))}\n` + `hosts=${sh(hosts.join(","))}\n`;
  const veths = node.interfaces.map((i) => `add_veth ${sh(hostVeth(node, i.device))} ${i.device} ${i.vlan}\n`).join("");
  return `#!/usr/bin/env bash
# Start script for container ${node.name} (machine number ${node.number}) of a nixos-test-ts test,
# generated by test/guests/start-scripts.ts for the "container" guest in
# ${guestDir}
# Contract as nixpkgs' run-<name>-nspawn: RUN_NSPAWN_ROOT_DIR (the container's
# root, its state directory), RUN_NSPAWN_SHARED_DIR (bound at /tmp/shared);
# prints "systemd-nspawn's PID is <pid>", then nspawn's console (the boot and
# the journal). It creates a network namespace with one veth per vlan on the
# bridge br<vlan> (192.168.<vlan>.254, as nixpkgs' nspawn script) and a cgroup
# of its own, and removes all of them when nspawn ends, however it ends
# (SIGTERM and SIGINT included).
set -euo pipefail
name=${sh(node.name)}
rootfs=${sh(join(guestDir, "rootfs"))}
die() { echo "${scriptName}: $*" >&2; exit 1; }
root=\${RUN_NSPAWN_ROOT_DIR:?${scriptName}: set RUN_NSPAWN_ROOT_DIR to the root directory of the container}
shared=\${RUN_NSPAWN_SHARED_DIR:-}
((EUID == 0)) || die "systemd-nspawn needs root: run the driver as root"
for tool in systemd-nspawn ip flock; do
  command -v "$tool" > /dev/null || die "$tool is missing (Debian: apt-get install systemd-container iproute2 util-linux)"
done

netns=nixos-nspawn-$name
child='' made_netns='' veths=() bridges=() cgroups=() parents=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $child ]] && kill -0 "$child" 2> /dev/null; then
    kill -TERM "$child" 2> /dev/null || true
    wait "$child" 2> /dev/null || true
  fi
  local v br k
  for v in "\${veths[@]}"; do ip link delete "$v" 2> /dev/null || true; done
  # A bridge goes when nothing is plugged in any more (the driver's tap, other containers).
  for br in "\${bridges[@]}"; do
    (
      flock 8
      if ip link show "$br" > /dev/null 2>&1 && [[ -z $(ip -o link show master "$br") ]]; then ip link delete "$br" 2> /dev/null || true; fi
    ) 8> "/run/nixos-nspawn/vlan-\${br#br}.lock"
  done
  [[ -z $made_netns ]] || ip netns delete "$netns" 2> /dev/null || true
  for k in "\${!cgroups[@]}"; do
    echo $$ > "\${parents[$k]}/cgroup.procs" 2> /dev/null || true
    find "\${cgroups[$k]}" -depth -type d -exec rmdir {} + 2> /dev/null || true
  done
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

add_veth() { # host-name device vlan
  local host=$1 dev=$2 vlan=$3 br=br$3
  mkdir -p /run/nixos-nspawn
  (
    flock 8
    # (ip, not /sys/class/net: sysfs shows the netns that mounted it, not ours.)
    if ! ip link show "$br" > /dev/null 2>&1; then
      ip link add "$br" type bridge
      ip link set "$br" up
      ip addr add "192.168.$vlan.254/24" dev "$br"
    fi
  ) 8> "/run/nixos-nspawn/vlan-$vlan.lock"
  bridges+=("$br")
  ip link delete "$host" 2> /dev/null || true
  ip link add "$host" type veth peer name "$dev" netns "$netns"
  veths+=("$host")
  ip link set "$host" master "$br"
  ip link set "$host" up
}

# A cgroup of its own in every hierarchy nspawn uses (its "payload" goes
# below it): two containers started from one cgroup would share one.
own_cgroup() { # mount-point controller-field
  local base=$1 field=$2 path
  path=$(awk -F: -v f="$field" '$2 == f { print $3; exit }' /proc/self/cgroup)
  [[ -n $path && -d $base ]] || return 0
  local parent=$base\${path%/}
  local dir=$parent/ntt-nspawn-$name-$$
  mkdir -p "$dir"
  cgroups+=("$dir")
  parents+=("$parent")
  echo $$ > "$dir/cgroup.procs"
}
if [[ -d /sys/fs/cgroup/unified ]]; then
  own_cgroup /sys/fs/cgroup/systemd name=systemd
  own_cgroup /sys/fs/cgroup/unified ''
else
  own_cgroup /sys/fs/cgroup ''
fi

# The writable part of the root, copied once per state directory; /usr is
# the guest's, bound read-only.
mkdir -p "$root"
chmod 0755 "$root"
if [[ ! -e $root/etc/os-release ]]; then
  for entry in "$rootfs"/* "$rootfs"/.[!.]*; do
    [[ -e $entry || -L $entry ]] || continue
    [[ \${entry##*/} == usr ]] && continue
    cp -a -- "$entry" "$root/"
  done
fi
mkdir -p "$root/usr/lib" "$root/etc/ntt"
# nspawn checks for an os-release before it binds /usr over this directory.
cp -- "$rootfs/usr/lib/os-release" "$root/usr/lib/os-release"
cat > "$root/etc/ntt/network" << 'NETWORK'
${network}NETWORK

ip netns delete "$netns" 2> /dev/null || true
ip netns add "$netns"
made_netns=1
${veths}
bind_shared=()
[[ -z $shared ]] || { mkdir -p "$shared"; bind_shared=(--bind="$shared:/tmp/shared"); }

(
  echo "systemd-nspawn's PID is $BASHPID"
  exec systemd-nspawn --register=no --keep-unit --boot --private-network \\
    --network-namespace-path="/run/netns/$netns" \\
    --machine="$name" --directory="$root" --bind-ro="$rootfs/usr:/usr" \\
    "\${bind_shared[@]}" --console=read-only
) &
child=$!
set +e
wait "$child"
status=$?
set -e
child=''
exit "$status"
`;
}
