# The options of nixpkgs' test framework (nixos/lib/testing/*.nix) that the
# Nix layer and its users touch, with nixpkgs' names, defaults and wiring:
# nodes and containers (evaluated here by a freeform merge of their modules,
# not by NixOS), defaults, interactive (the test evaluated again with
# --interactive), sshBackdoor, enableDebugHook, run.nix's test derivation.
{
  config,
  lib,
  extendModules,
  ...
}:
let
  inherit (lib) mkOption types;
  inherit (builtins)
    attrNames
    concatMap
    foldl'
    functionArgs
    intersectAttrs
    isAttrs
    isFunction
    isList
    isPath
    mapAttrs
    removeAttrs
    ;
  hostPkgs = config.hostPkgs;

  unwrap = v: if isAttrs v && (v._type or null) == "override" then unwrap v.content else v;
  merge =
    a: b:
    a
    // mapAttrs (
      n: v':
      let
        v = unwrap v';
      in
      if a ? ${n} && isAttrs a.${n} && isAttrs v && !(lib.isDerivation v) && !(lib.isDerivation a.${n}) then
        merge a.${n} v
      else if a ? ${n} && isList a.${n} && isList v then
        a.${n} ++ v
      else
        v
    ) b;

  # A machine's configuration: its modules' definitions merged (no option
  # declarations, no NixOS), over what NixOS would give it.
  evalMachine =
    kind: name: modules:
    let
      pkgs = if config.node.pkgs != null then config.node.pkgs else hostPkgs;
      args = {
        inherit lib name pkgs;
        config = machine;
        nodes = config.nodes;
        modulesPath = "/stub/nixos/modules";
      };
      collect =
        m:
        let
          raw = if isPath m then import m else m;
          v = if isFunction raw then raw (intersectAttrs (functionArgs raw) args) else raw;
          defs = if v ? config || v ? options then v.config or { } else removeAttrs v [ "imports" "_file" "key" ];
        in
        [ defs ] ++ concatMap collect (v.imports or [ ]);
      base = {
        networking.hostName = name;
        system.name = name;
        system.build =
          if kind == "container" then
            { nspawn = hostPkgs.runCommand "nspawn-${name}" { } "exit 1" // { meta.mainProgram = "run-${name}-nspawn"; }; }
          else
            { vm = hostPkgs.runCommand "nixos-vm-${name}" { } "exit 1" // { meta.mainProgram = "run-${name}-vm"; }; };
      };
      machine = foldl' merge base (concatMap collect modules);
    in
    machine;

  machines =
    kind: defaults: values:
    let
      names = lib.unique (concatMap attrNames values);
      modulesOf = n: concatMap (v: if v ? ${n} then [ v.${n} ] else [ ]) values;
    in
    lib.genAttrs names (n: evalMachine kind n ([ config.defaults defaults ] ++ modulesOf n));

  module = mkOption {
    type = types.deferredModule;
    default = { };
    _merge = values: { imports = values; };
  };
in
{
  options = {
    name = mkOption { type = types.str; };
    hostPkgs = mkOption { type = types.raw; };
    nodes = mkOption {
      type = types.attrsOf types.raw;
      default = { };
      _merge = machines "vm" config.nodeDefaults;
    };
    containers = mkOption {
      type = types.attrsOf types.raw;
      default = { };
      _merge = machines "container" config.containerDefaults;
    };
    defaults = module;
    nodeDefaults = module;
    containerDefaults = module;
    extraBaseModules = module;
    node.pkgs = mkOption {
      type = types.raw;
      default = null;
    };
    node.specialArgs = mkOption {
      type = types.raw;
      default = { };
    };
    sshBackdoor.enable = mkOption {
      type = types.bool;
      default = config.enableDebugHook;
    };
    enableDebugHook = lib.mkEnableOption "the debug hook";
    extraPythonPackages = mkOption {
      type = types.functionTo (types.listOf types.package);
      default = _: [ ];
    };
    skipLint = mkOption { type = types.bool; default = false; };
    skipTypeCheck = mkOption { type = types.bool; default = false; };
    globalTimeout = mkOption { type = types.int; default = 3600; };
    enableOCR = mkOption { type = types.bool; default = false; };
    extraDriverArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    logLevel = mkOption {
      type = types.enum [ "debug" "info" "warning" "error" ];
      default = "info";
    };
    qemu.package = mkOption {
      type = types.package;
      default = hostPkgs.qemu_test;
    };
    driver = mkOption {
      type = types.package;
      # nixpkgs' Python driver; nix/modules/nixos-test-ts.nix replaces it.
      default = hostPkgs.runCommand "nixos-test-driver-python-${config.name}" { } "exit 1";
    };
    interactive = mkOption {
      type = types.raw;
      # The whole test again, with these definitions added (nixpkgs: moduleType).
      _merge = values: (extendModules { modules = values; }).config;
    };
    passthru = mkOption {
      type = types.attrsOf types.raw;
      default = { };
    };
    meta = mkOption {
      type = types.raw;
      default = { };
    };
    rawTestDerivationArg = mkOption { type = types.functionTo types.raw; };
    test = mkOption { type = types.package; };
    result = mkOption { type = types.raw; };
  };

  config = {
    _module.args = {
      inherit hostPkgs;
      nodes = config.nodes;
      containers = config.containers;
    };
    interactive = {
      qemu.package = hostPkgs.qemu;
      extraDriverArgs = [ "--interactive" ];
    };
    passthru = {
      driver = config.driver; # run.nix
      driverInteractive = config.interactive.driver; # interactive.nix
      nodes = config.nodes;
      containers = config.containers;
    };
    rawTestDerivationArg = _: {
      name = "vm-test-run-${config.name}";
      buildCommand = "${config.driver}/bin/nixos-test-driver -o $out";
      inherit (config) passthru meta;
    };
    test =
      let
        arg = config.rawTestDerivationArg { };
      in
      hostPkgs.runCommand arg.name (removeAttrs arg [ "name" "buildCommand" ]) arg.buildCommand;
  };
}
