# A host-tools stand-in for nixpkgs, just wide enough for nix/lib/driver.nix
# (its `inherit (pkgs) …` line lists what it takes), so that the real Nix
# pipeline can be built here, where no nixpkgs and no binary cache can be
# reached. Every derivation is `builtins.derivation` with /bin/sh as its
# builder and the host's tools on PATH: coreutils, sed, node, QEMU, vde2
# (Debian packages). Build scripts run under `set -eu`, as stdenv's do.
#
# The runtime package is this checkout's build: `dist` is a store path (a
# flake input: content-addressed, so a rebuilt dist/ rebuilds the drivers),
# `nodeModules` a host path the package links to and does not copy (impure:
# it must be readable by the build user, and inside the sandbox when there is
# one; test/nix/helpers.ts passes it in extra-sandbox-paths).
{
  system,
  dist,
  nodeModules,
  node ? "/usr/bin/node",
  hostPath ? "/usr/local/bin:/usr/bin:/bin",
}:
let
  runCommand = import ./run-command.nix { inherit system hostPath; };

  writeText =
    name: text:
    runCommand name {
      inherit text;
      passAsFile = [ "text" ];
    } ''cp "$textPath" "$out"'';

  nodejs = runCommand "nodejs-host" { } ''
    mkdir -p "$out/bin"
    ln -s ${node} "$out/bin/node"
  '';

  # What buildNpmPackage makes of this repository (lib/node_modules/nixos-test-ts
  # + bin wrappers), made from the checkout instead. The drivers' PATH gets
  # the host's vde_switch and QEMU, as the real package's wrapper adds vde2.
  nixos-test-ts = runCommand "nixos-test-ts-checkout" { } ''
    pkg="$out/lib/node_modules/nixos-test-ts"
    mkdir -p "$pkg" "$out/bin"
    cp -R ${dist} "$pkg/dist"
    echo '{ "name": "nixos-test-ts", "type": "module" }' > "$pkg/package.json"
    ln -s ${nodeModules} "$pkg/node_modules"
    for bin in nixos-test-ts:generator/cli.js nixos-test-driver:runtime/cli.js; do
      cat > "$out/bin/''${bin%%:*}" <<EOF
    #!/bin/sh
    PATH=${hostPath}\''${PATH:+:\$PATH}
    export PATH
    exec ${node} $pkg/dist/''${bin#*:} "\$@"
    EOF
      chmod +x "$out/bin/''${bin%%:*}"
    done
  '';

  # Start scripts written by test/guests/start-scripts.ts (writeStartScripts)
  # before the build, as a package with bin/run-<name>-vm like a NixOS VM's
  # system.build.vm. Those scripts name the guest in the host's cache, which
  # build users cannot read: here they name its store copy instead.
  startScriptsFrom =
    {
      scripts, # directory of run-<name>-vm
      guest, # store path of the guest (vmlinuz, initrd.gz)
      guestDir, # the host directory the scripts name
      salt ? "", # a new one makes a new package (and so new drivers and test runs)
    }:
    runCommand "tiny-guest-vms" { inherit salt; } ''
      mkdir -p "$out/bin"
      for script in ${scripts}/run-*-vm; do
        target="$out/bin/$(basename "$script")"
        sed "s|${guestDir}|${guest}|g" "$script" > "$target"
        chmod +x "$target"
      done
    '';
in
{
  inherit
    runCommand
    writeText
    nodejs
    nixos-test-ts
    startScriptsFrom
    ;
  runtimeShell = "/bin/sh";
}
