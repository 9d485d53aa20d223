# runCommand as the host-tools shim and the stub nixpkgs both make it:
# builtins.derivation with /bin/sh as builder, the script passed as a file and
# run under `set -eu` as stdenv's are, passthru and meta kept on the result.
# `hostPath`, when given, is the build's PATH (the shim's host tools).
{
  system,
  hostPath ? null,
}:
name: env: buildCommand:
let
  drv = builtins.derivation (
    builtins.removeAttrs env [ "passthru" "meta" ]
    // {
      inherit name system buildCommand;
      builder = "/bin/sh";
      args = [ "-euc" ". \"$buildCommandPath\"" ];
      passAsFile = (env.passAsFile or [ ]) ++ [ "buildCommand" ];
    }
    // (if hostPath == null then { } else { PATH = hostPath; })
  );
in
drv // (env.passthru or { }) // { meta = env.meta or { }; }
