# The glue into nixpkgs' test framework (nixos/lib/testing): a test module
# that takes the place of nixpkgs' testScript.nix (run-test.nix leaves that
# one out) and supplies the driver. Nodes, `defaults`, vlans, start scripts,
# `interactive.*`, `passthru`, `meta` and the options nixpkgs' driver.nix
# declares (skipTypeCheck, skipLint, globalTimeout, logLevel,
# extraDriverArgs, enableOCR) stay nixpkgs'; this module reads them.
# nixpkgs' options that the TypeScript driver cannot honour (sshBackdoor,
# enableDebugHook, extraPythonPackages) fail evaluation naming what to use
# instead; none is ignored silently.
#
# test/nix/modules.test.ts evaluates it against a stub nixpkgs
# (test/nix/stub-nixpkgs); test/nix builds nix/lib/driver.nix, which it
# calls, with real nix through a shim.
{
  config,
  lib,
  hostPkgs,
  ...
}:
let
  testConfig = config;
  inherit (lib) mkOption types;

  # testScript in every form it takes: a file, a text, `{ file; values; }`,
  # or a function of { nodes, containers, pkgs, lib } returning one of those.
  scriptArgs = {
    nodes = config.nodesCompat or config.nodes;
    containers = config.containers or { };
    pkgs = hostPkgs;
    inherit lib;
  };
  # lib's isFunction/functionArgs, not builtins': types.functionTo merges a
  # function into a functor that keeps its arguments in __functionArgs.
  scriptResult =
    if lib.isFunction config.testScript then
      config.testScript (builtins.intersectAttrs (lib.functionArgs config.testScript) scriptArgs)
    else
      config.testScript;
  scriptKeys = [ "file" "values" ];
  withValues = builtins.isAttrs scriptResult && !(lib.isDerivation scriptResult) && !(scriptResult ? outPath);
  script =
    if !withValues then
      scriptResult
    else
      let
        unknown = builtins.filter (k: !(builtins.elem k scriptKeys)) (builtins.attrNames scriptResult);
      in
      assert lib.assertMsg (unknown == [ ])
        "nixos-test-ts: test ${config.name}: testScript has ${builtins.concatStringsSep ", " unknown}; it takes { file = ./test.ts; values = { … }; }";
      assert lib.assertMsg (scriptResult ? file) "nixos-test-ts: test ${config.name}: testScript = { … } needs `file` (the script, e.g. ./test.ts) next to `values`";
      scriptResult.file;
  values = if withValues then scriptResult.values or { } else { };
  # nixpkgs' options this driver cannot honour: evaluation fails naming what
  # to use instead (checked when the driver is built, so also for
  # driverInteractive, where `interactive.*` applies).
  refuse =
    cond: message: x:
    if cond then throw "nixos-test-ts: test ${config.name}: ${message}" else x;
  refusals =
    x:
    # enableDebugHook first: it turns sshBackdoor on by default.
    refuse config.enableDebugHook
      "enableDebugHook is not supported (it attaches to a sandboxed build with breakpointHook). Run the test with driverInteractive, or add extraDriverArgs = [ \"--pause-on-failure\" ]: a failure then keeps the machines running and opens the REPL, with `.shell <machine>`."
      (
        refuse config.sshBackdoor.enable
          "sshBackdoor.enable (also as interactive.sshBackdoor.enable) is not supported: the TypeScript driver has no vsock SSH backdoor. For a root shell in a machine, run driverInteractive and type `.shell <machine>` in its REPL."
          (
            refuse (builtins.length (config.extraPythonPackages (hostPkgs.python3Packages or { })) != 0)
              "extraPythonPackages is for nixpkgs' Python driver; the script is TypeScript. Give the npm packages it imports with nodeModules (a node_modules directory, e.g. pkgs.importNpmLock.buildNodeModules { npmRoot = ./.; inherit (pkgs) nodejs; })."
              x
          )
      );

  # The store paths the script's values name, for nodes whose store is an image.
  valuesJson = builtins.toJSON values;

  # A path, or a string naming one (a single line starting with /); any other
  # string is the script's text.
  isFile = builtins.isPath script || (builtins.isString script && builtins.match "/[^\n]*" script != null);
  inlineSrc = hostPkgs.writeTextDir "test.ts" script;

  ntt = import ../lib/driver.nix {
    pkgs = hostPkgs;
    nixos-test-ts = config.nixosTestTs.package;
  } {
    containers = config.containers or { };
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
    inherit values;
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
      type = types.oneOf [
        types.path
        types.str
        (types.functionTo types.raw)
        (types.attrsOf types.raw)
      ];
      description = ''
        The test script, in TypeScript: a file (`./test.ts`; the modules it
        imports from its directory come along), or its text; or
        `{ file = ./test.ts; values = { … }; }`, where `values` are computed
        by Nix and reach the script as its typed, readonly `values` (literal
        types: a misspelt name fails the check); or a function of
        `{ nodes, containers, pkgs, lib }` returning any of these, as
        nixpkgs' `testScript = { nodes, ... }: …`. Store paths in `values`
        are dependencies of the test. The script is type-checked and linted
        against the test's nodes when the driver is built.
      '';
      example = lib.literalExpression ''
        { nodes, pkgs, ... }: {
          file = ./test.ts;
          values = {
            serverIp = nodes.server.networking.primaryIPAddress;
            hello = "''${pkgs.hello}/bin/hello";
          };
        }
      '';
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
    includeTestScriptReferences = mkOption {
      type = types.bool;
      default = true;
      internal = true;
      description = ''
        As nixpkgs' option of this name: the store paths the script's
        `values` name are added to `virtualisation.additionalPaths` of nodes
        with `virtualisation.useNixStoreImage`.
      '';
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

    driver = lib.mkForce (refusals ntt.driver);

    # As nixpkgs' testScript.nix does for the script's text (short-circuited
    # first on useNixStoreImage: values may read the nodes).
    defaults =
      { config, ... }:
      {
        virtualisation.additionalPaths = lib.optional (
          (config.virtualisation.useNixStoreImage or false) && testConfig.includeTestScriptReferences && builtins.hasContext valuesJson
        ) (hostPkgs.writeStringReferencesToFile valuesJson);
      };
    passthru = {
      inherit (ntt) manifest script;
    };

    # As nixpkgs' run.nix, but $out keeps the XML log and gets junit.xml
    # (report.html is always written to the output directory).
    rawTestDerivationArg = lib.mkForce (
      finalAttrs:
      refusals {
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
