# A NixOS test with a TypeScript test script: manifest + start scripts +
# test.ts → the driver, the interactive driver and the test derivation.
#
#   ntt = import ./driver.nix { inherit pkgs; nixos-test-ts = <the runtime package>; };
#   t = ntt {
#     name = "two-nodes";
#     nodes = { server = <evaluated NixOS config>; client = …; };
#     testScript = ./test.ts;           # its sibling modules come along (testScriptSrc)
#   };
#   t.test  t.driver  t.driverInteractive  t.manifest  t.script  t.driverConfiguration  t.src
#
# The build of `script` is where a test fails fast: `nixos-test-ts check`
# generates the typed bindings from the manifest, type-checks and lints the
# script and emits JavaScript. A mistake fails `nix build` at the user's
# file:line before any VM is built or started.
#
# nix/modules/ plugs this into nixpkgs' test framework; test/nix/pkgs-shim.nix
# plugs it into a plain host (Debian, no nixpkgs) for this repository's tests.
{
  pkgs,
  nixos-test-ts ? pkgs.nixos-test-ts,
}:
let
  # Everything this file takes from nixpkgs (test/nix/pkgs-shim.nix provides
  # the same on a host without nixpkgs). Build scripts are POSIX sh, valid
  # under `set -eu`.
  inherit (pkgs)
    runCommand # name -> env -> script -> derivation (env: passAsFile, passthru, meta, requiredSystemFeatures)
    writeText # name -> text -> derivation
    runtimeShell # "/nix/store/…-bash/bin/bash": the wrappers' interpreter
    nodejs # bin/node, for the manifest's build step
    ;

  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    isPath
    isString
    mapAttrs
    match
    replaceStrings
    stringLength
    substring
    toJSON
    ;

  configOf = import ./config-of.nix;
  escape = s: "'" + replaceStrings [ "'" ] [ "'\\''" ] s + "'";
  escapeArgs = args: concatStringsSep " " (map escape args);
  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;

  # What a test script directory contributes to the driver: scripts and data
  # modules, not the Nix files around them (editing test.nix must not rebuild
  # the driver), nor the editor's generated bindings, nor build results.
  scriptSourceFilter =
    path: type:
    let
      base = baseNameOf path;
    in
    if type == "directory" then
      !(builtins.elem base [ "node_modules" ".git" ".direnv" ]) && match "result(-.*)?" base == null
    else
      match ".*\\.(ts|mts|cts|js|mjs|cjs|json)" base != null
      && !(builtins.elem base [ "flake.lock" "package-lock.json" "test.generated.ts" "nixos-test-ts.env.d.ts" "tsconfig.json" ]);
in
{
  name,
  # name -> evaluated NixOS configuration (or anything with it under .config).
  nodes,
  # The test script: a path to a .ts (or .mts) file.
  testScript,
  # Values computed by Nix for the script: its typed, readonly `values`
  # export (`values.serverIp`), with literal types. Anything builtins.toJSON
  # takes; a derivation or path in it becomes its store path, and a
  # dependency of the script, the driver and the test.
  values ? { },
  # The directory the script's sibling modules come from; by default the
  # script's own directory, filtered by scriptSourceFilter.
  testScriptSrc ? null,
  # name -> evaluated configuration of a systemd-nspawn container (nixpkgs'
  # `containers.<name>`): machines of the test like nodes, started by
  # run-<name>-nspawn.
  containers ? { },
  # name -> command starting the VM; by default the node's system.build.vm.
  startScripts ? null,
  # name -> command starting the container; by default the container's
  # system.build.nspawn (its meta.mainProgram, run-<name>-nspawn).
  containerStartScripts ? null,
  # name -> unit directories whose unit files complete the node's units; by
  # default <system.build.toplevel>/etc/systemd/system when the node has one.
  unitDirs ? null,
  # npm packages the script imports (the TS twin of extraPythonPackages): a
  # node_modules directory, or a directory holding one (e.g.
  # importNpmLock.buildNodeModules { npmRoot = ./.; inherit nodejs; }).
  nodeModules ? null,
  skipTypeCheck ? false,
  skipLint ? false,
  strictPorts ? false,
  globalTimeout ? 3600,
  logLevel ? "info",
  extraDriverArgs ? [ ],
  # Packages whose bin/ the driver gets on PATH (tesseract for OCR, …).
  extraPath ? [ ],
  passthru ? { },
  meta ? { },
}:
let
  configs = mapAttrs (_: configOf) nodes;
  containerConfigs = mapAttrs (_: configOf) containers;
  # Unit directories and the like are read the same way for both kinds.
  allConfigs = configs // containerConfigs;

  scriptPath = toString testScript;
  src =
    if testScriptSrc != null then
      testScriptSrc
    else if isPath testScript then
      builtins.path {
        name = "${name}-test-script-src";
        path = dirOf testScript;
        filter = scriptSourceFilter;
      }
    else
      throw "nixos-test-ts: test ${name}: testScript is a string (${scriptPath}); pass a path (testScript = ./test.ts), or testScriptSrc with the directory it is in";
  srcPrefix = toString (if testScriptSrc != null then testScriptSrc else dirOf testScript) + "/";
  relScript =
    if hasPrefix srcPrefix scriptPath then
      substring (stringLength srcPrefix) (-1) scriptPath
    else
      throw "nixos-test-ts: test ${name}: testScript ${scriptPath} is not inside testScriptSrc ${srcPrefix}";
  # The emitted entry, as tsc names it: test.ts -> test.js, test.mts -> test.mjs,
  # relative to the common directory of the program's sources. That is the
  # script's own directory unless it imports from above it, so the build
  # looks for the longest of these that exists and links it as entry.mjs.
  entryMatch = match "(.*)\\.(ts|mts)" relScript;
  relEntry =
    if entryMatch == null then
      throw "nixos-test-ts: test ${name}: the test script must be a .ts or .mts file, not ${relScript}"
    else
      builtins.head entryMatch + (if builtins.elemAt entryMatch 1 == "ts" then ".js" else ".mjs");
  entryParts = filter isString (builtins.split "/" relEntry);
  entryCandidates = builtins.genList (
    i: concatStringsSep "/" (builtins.genList (j: builtins.elemAt entryParts (i + j)) (builtins.length entryParts - i))
  ) (builtins.length entryParts);

  evalManifest = import ./manifest.nix {
    inherit name globalTimeout strictPorts values;
    nodes = configs;
    containers = containerConfigs;
  };

  defaultUnitDirs = builtins.removeAttrs (mapAttrs (
    _: c: if c ? system.build.toplevel then [ "${c.system.build.toplevel}/etc/systemd/system" ] else [ ]
  ) allConfigs) (filter (n: !(allConfigs.${n} ? system.build.toplevel)) (attrNames allConfigs));
  allUnitDirs = if unitDirs != null then unitDirs else defaultUnitDirs;

  # Eval-time facts, completed at build time with the units packages install.
  manifest =
    if allUnitDirs == { } then
      writeText "${name}-manifest.json" (toJSON evalManifest)
    else
      runCommand "${name}-manifest.json"
        {
          evalManifest = toJSON evalManifest;
          unitDirs = toJSON allUnitDirs;
          passAsFile = [ "evalManifest" "unitDirs" ];
          preferLocalBuild = true;
        }
        ''
          ${nodejs}/bin/node ${./manifest-units.mjs} "$evalManifestPath" "$unitDirsPath" "$out"
        '';

  checkFlags =
    [ "--timings" ]
    ++ (if skipTypeCheck then [ "--skip-type-check" ] else [ ])
    ++ (if skipLint then builtins.trace "warning: nixos-test-ts: test ${name}: linting is disabled (skipLint)" [ "--skip-lint" ] else [ ]);

  # The checked, compiled script: $out/src (the sources as checked),
  # $out/test-script (JavaScript + source maps), $out/node_modules.
  # The typed bindings, a derivation of their own: they depend on the manifest only, so editing
  # test.ts reuses them and the check does not load the generator (ts-morph) at all.
  generated =
    runCommand "nixos-test-generated-${name}"
      {
        preferLocalBuild = true;
        allowSubstitutes = false;
      }
      ''
        ${nixos-test-ts}/bin/nixos-test-ts generate --manifest ${manifest} --out "$out"
      '';

  script =
    runCommand "nixos-test-script-${name}"
      {
        preferLocalBuild = true;
        allowSubstitutes = false;
      }
      ''
        mkdir -p "$out"
        cp -R ${src} "$out/src"
        chmod -R u+w "$out/src"
        ${
          if nodeModules == null then
            ""
          else
            ''
              # Bare imports resolve upwards from $out/src (type check) and $out/test-script (run time).
              if [ -d ${nodeModules}/node_modules ]; then ln -s ${nodeModules}/node_modules "$out/node_modules"; else ln -s ${nodeModules} "$out/node_modules"; fi
            ''
        }
        mkdir -p "$out/test-script"
        cp ${generated}/test.generated.ts ${generated}/.test.generated.key "$out/test-script/"
        chmod u+w "$out/test-script/test.generated.ts" "$out/test-script/.test.generated.key"
        cd "$out/src"
        echo "nixos-test-ts: checking ${relScript} (generate, type check${if skipTypeCheck then " skipped" else ""}, lint${if skipLint then " skipped" else ""}, emit)"
        ${nixos-test-ts}/bin/nixos-test-ts check --manifest ${manifest} --out "$out/test-script" ${escapeArgs checkFlags} ${escape relScript}
        entry=
        for candidate in ${escapeArgs entryCandidates}; do
          if [ -z "$entry" ] && [ -f "$out/test-script/$candidate" ]; then entry=$candidate; fi
        done
        if [ -z "$entry" ]; then
          echo "nixos-test-ts: the check emitted none of ${concatStringsSep ", " entryCandidates} in $out/test-script" >&2
          exit 1
        fi
        # ES module whatever its name: Node resolves the link to the emitted file.
        ln -s "test-script/$entry" "$out/entry.mjs"
      '';

  startCommands =
    if startScripts != null then
      startScripts
    else
      mapAttrs (n: c: "${c.system.build.vm}/bin/run-${c.system.name or n}-vm") configs;

  containerStartCommands =
    if containerStartScripts != null then
      containerStartScripts
    else
      mapAttrs (
        n: c:
        let
          nspawn = c.system.build.nspawn;
        in
        "${nspawn}/bin/${nspawn.meta.mainProgram or "run-${n}-nspawn"}"
      ) containerConfigs;

  machineEntry = n: s: {
    name = n;
    start_script = if isPath s then "${s}" else toString s;
  };

  # nixpkgs' driver configuration (nixos/lib/testing/driver-configuration.nix).
  driverConfiguration = {
    vms = mapAttrs machineEntry startCommands;
    containers = mapAttrs machineEntry containerStartCommands;
    inherit (evalManifest) vlans;
    global_timeout = globalTimeout;
    enable_ssh_backdoor = false;
    test_script = "${script}/entry.mjs";
  };

  pathLine =
    if extraPath == [ ] then
      ""
    else
      "PATH=${concatStringsSep ":" (map (p: "${p}/bin") extraPath)}\\\${PATH:+:\\$PATH}\nexport PATH\n";

  mkDriver =
    suffix: args:
    runCommand "nixos-test-driver-${name}${suffix}"
      {
        config = toJSON driverConfiguration;
        passAsFile = [ "config" ];
        preferLocalBuild = true;
        allowSubstitutes = false;
        passthru = passthru // {
          inherit manifest generated script driverConfiguration;
        };
        meta = meta // {
          mainProgram = "nixos-test-driver";
        };
      }
      ''
        mkdir -p "$out/bin"
        cp "$configPath" "$out/driver-configuration.json"
        ln -s ${manifest} "$out/manifest.json"
        ln -s ${script} "$out/script"
        cat > "$out/bin/nixos-test-driver" <<EOF
        #!${runtimeShell}
        ${pathLine}exec ${nixos-test-ts}/bin/nixos-test-driver --config $out/driver-configuration.json ${escapeArgs args} "\$@"
        EOF
        chmod +x "$out/bin/nixos-test-driver"
      '';

  # --manifest: the REPL (driverInteractive, --pause-on-failure) completes each machine's units from it.
  baseArgs = [
    "--log-level"
    logLevel
    "--test-name"
    name
    "--manifest"
    "${manifest}"
  ] ++ extraDriverArgs;

  driver = mkDriver "" baseArgs;
  driverInteractive = mkDriver "-interactive" (baseArgs ++ [ "--interactive" ]);

  # As nixpkgs' run.nix, but $out keeps the XML log and gets the JUnit report
  # (report.html is always written to the output directory).
  test =
    runCommand "vm-test-run-${name}"
      {
        requiredSystemFeatures = [ "nixos-test" "kvm" ];
        passthru = passthru // {
          inherit driver driverInteractive manifest generated script driverConfiguration;
        };
        inherit meta;
      }
      ''
        mkdir -p "$out"
        export LOGFILE="$out/log.xml"
        ${driver}/bin/nixos-test-driver -o "$out" --junit-xml junit.xml
      '';
in
assert isString logLevel && builtins.elem logLevel [ "debug" "info" "warning" "error" ];
{
  inherit
    test
    driver
    driverInteractive
    manifest
    script
    driverConfiguration
    # The directory the script and its modules are taken from (filtered).
    src
    ;
}
