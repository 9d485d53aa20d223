# The glue into nixpkgs' test framework (nixos/lib/testing): a test module
# that takes the place of nixpkgs' testScript.nix (run-test.nix leaves that
# one out) and supplies the driver. Nodes, `defaults`, vlans, start scripts,
# `interactive.*`, `passthru`, `meta` and the options nixpkgs' driver.nix
# declares (skipTypeCheck, skipLint, globalTimeout, logLevel,
# extraDriverArgs, enableOCR) stay nixpkgs'; this module reads them.
#
# It needs real nixpkgs and is not evaluated by this repository's tests
# (test/nix builds nix/lib/driver.nix, which it calls, through a shim).
{
  config,
  lib,
  hostPkgs,
  ...
}:
let
  inherit (lib) mkOption types;

  script = config.testScript;
  # A path, or a string naming one (a single line starting with /); any other
  # string is the script's text.
  isFile = builtins.isPath script || (builtins.isString script && builtins.match "/[^\n]*" script != null);
  inlineSrc = hostPkgs.writeTextDir "test.ts" script;

  ntt = import ../lib/driver.nix {
    pkgs = hostPkgs;
    nixos-test-ts = config.nixosTestTs.package;
  } {
    inherit (config)
      name
      nodes
      skipTypeCheck
      skipLint
      globalTimeout
      logLevel
      extraDriverArgs
      strictPorts
      nodeModules
      passthru
      ;
    testScript = if isFile then script else "${inlineSrc}/test.ts";
    testScriptSrc = if isFile then config.testScriptSrc else inlineSrc;
    extraPath = lib.optionals config.enableOCR [
      (hostPkgs.tesseract4.override { enableLanguages = [ "eng" ]; })
      hostPkgs.imagemagick_light
    ];
    meta = config.meta;
  };
in
{
  options = {
    testScript = mkOption {
      type = types.either types.path types.str;
      description = ''
        The test script, in TypeScript: a file (`./test.ts`; the modules it
        imports from its directory come along), or its text. It is
        type-checked and linted against the test's nodes when the driver is
        built.
      '';
      example = lib.literalExpression "./test.ts";
    };
    testScriptString = mkOption {
      type = types.str;
      readOnly = true;
      internal = true;
      description = "The script's text, for modules that read nixpkgs' option of this name.";
    };
    testScriptSrc = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = ''
        The directory the script and the modules it imports are taken from;
        by default the script's own directory (its .ts/.js/.json files).
      '';
    };
    nodeModules = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = ''
        npm packages the script imports (the TypeScript twin of
        `extraPythonPackages`): a `node_modules` directory or one holding it,
        e.g. `pkgs.importNpmLock.buildNodeModules { npmRoot = ./.; inherit (pkgs) nodejs; }`.
      '';
    };
    strictPorts = mkOption {
      type = types.bool;
      default = false;
      description = "A port the script waits for that no node's firewall opens is a build error, not a warning.";
    };
    nixosTestTs.package = mkOption {
      type = types.package;
      default = hostPkgs.callPackage ../package.nix { };
      defaultText = lib.literalExpression "hostPkgs.callPackage <nixos-test-ts/nix/package.nix> { }";
      description = "The nixos-test-ts runtime and generator the driver is built with.";
    };
  };

  config = {
    testScriptString = if isFile then builtins.readFile script else script;

    driver = lib.mkForce ntt.driver;
    passthru = {
      inherit (ntt) manifest script;
    };

    # As nixpkgs' run.nix, but $out keeps the XML log and gets junit.xml
    # (report.html is always written to the output directory).
    rawTestDerivationArg = lib.mkForce (
      finalAttrs:
      assert lib.assertMsg (!config.sshBackdoor.enable) "nixos-test-ts: sshBackdoor is not supported yet; use driverInteractive";
      assert lib.assertMsg (!config.enableDebugHook) "nixos-test-ts: enableDebugHook is not supported yet; use driverInteractive";
      {
        name = "vm-test-run-${config.name}";
        requiredSystemFeatures = [
          "nixos-test"
          "kvm"
        ];
        buildCommand = ''
          mkdir -p $out
          export LOGFILE=$out/log.xml
          ${config.driver}/bin/nixos-test-driver -o $out --junit-xml junit.xml
        '';
        passthru = config.passthru;
        meta = config.meta;
      }
    );
  };
}
