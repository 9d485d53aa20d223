# legacyPackages.<system> of the stub nixpkgs: runCommand and friends as
# test/nix/pkgs-shim.nix makes them (builtins.derivation, /bin/sh), and a
# stub derivation for each package the Nix layer or the examples name.
{
  system,
  lib,
  path,
}:
let
  runCommand = import ../run-command.nix { inherit system; };

  # A package that is only named, never built.
  stub =
    name:
    runCommand "stub-${name}" { } "echo 'test/nix/stub-nixpkgs: ${name} is a stub' >&2; exit 1"
    // {
      pname = name;
      meta.mainProgram = name;
      override = _: stub name;
    };

  pkgs = {
    inherit lib system path runCommand;
    stdenv.hostPlatform = {
      inherit system;
      isLinux = true;
      isDarwin = false;
    };
    runtimeShell = "/bin/sh";
    writeText =
      name: text:
      runCommand name {
        inherit text;
        passAsFile = [ "text" ];
      } ''cp "$textPath" "$out"'';
    writeTextDir =
      file: text:
      runCommand (baseNameOf file) {
        inherit text;
        passAsFile = [ "text" ];
      } ''mkdir -p "$out/$(dirname ${file})"; cp "$textPath" "$out/${file}"'';
    writeStringReferencesToFile = text: pkgs.writeText "string-references" text;
    callPackage =
      f: overrides:
      let
        fn = if builtins.isPath f then import f else f;
      in
      fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // overrides);
    buildNpmPackage =
      attrs:
      runCommand "${attrs.pname}-${attrs.version}" {
        inherit (attrs) src;
        deps = attrs.npmDeps;
        meta = attrs.meta or { };
      } ''cp -R "$src" "$out"''
      // {
        inherit (attrs) pname version;
      };
    importNpmLock =
      { npmRoot, ... }: runCommand "npm-deps" { } ''mkdir -p "$out"; cp ${npmRoot}/package-lock.json "$out/"''
      // { npmConfigHook = stub "npm-config-hook"; };
    testers = { };
  }
  // lib.genAttrs [
    "coreutils"
    "nodejs"
    "curl"
    "hello"
    "nginx"
    "qemu"
    "qemu_test"
    "vde2"
    "python3"
    "makeWrapper"
    "imagemagick_light"
    "tesseract4"
    "openssh"
    "inetutils"
  ] stub;
in
pkgs
