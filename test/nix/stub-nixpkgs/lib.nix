# A stand-in for nixpkgs' lib, just wide enough to evaluate flake.nix and
# nix/modules/ without nixpkgs (test/nix/outputs.test.ts): genAttrs and the
# few helpers they use, and a small module system (options with defaults,
# types that check, priorities from mkDefault/mkForce, mkIf, mkMerge, apply,
# imports, module arguments, extendModules). It is not nixpkgs' module
# system: what it proves is that every path and attribute those files name
# exists and that their derivations instantiate, not nixpkgs' merge rules.
let
  inherit (builtins)
    all
    any
    attrNames
    concatLists
    concatMap
    concatStringsSep
    elem
    filter
    foldl'
    functionArgs
    head
    isAttrs
    isBool
    isFunction
    isInt
    isList
    isPath
    isString
    listToAttrs
    mapAttrs
    removeAttrs
    stringLength
    substring
    tail
    ;

  isType = t: v: isAttrs v && (v._type or null) == t;
  hasPrefix = p: s: substring 0 (stringLength p) s == p;
  isDerivation = v: isAttrs v && (v.type or null) == "derivation";

  mkType = name: check: { inherit name check; _type = "type"; };

  # A type's own merge of the definitions, or null when it has none (then
  # mergeValues merges lists, attribute sets, modules by their shape).
  mergeWith = t: values: if t ? merge then t.merge values else null;

  # As nixpkgs' lib: a functor counts as a function, and keeps its arguments.
  isFunctionLike = f: isFunction f || (isAttrs f && f ? __functor);
  functionArgsOf = f: if isAttrs f && f ? __functor then f.__functionArgs or (functionArgs (f.__functor f)) else functionArgs f;

  types = rec {
    str = mkType "string" isString;
    path = mkType "path" (v: isPath v || (isString v && hasPrefix "/" v) || isDerivation v);
    bool = mkType "boolean" isBool;
    int = mkType "signed integer" isInt;
    ints.unsigned = mkType "unsigned integer" (v: isInt v && v >= 0);
    package = mkType "package" (v: isDerivation v || isPath v);
    raw = mkType "raw value" (_: true);
    anything = raw;
    unspecified = raw;
    pkgs = raw;
    deferredModule = mkType "module" (v: isAttrs v || isFunction v || isPath v);
    # Merged by the first type every definition is of (nixpkgs' either).
    either = a: b: mkType "${a.name} or ${b.name}" (v: a.check v || b.check v) // {
      merge = values: if all a.check values then mergeWith a values else if all b.check values then mergeWith b values else null;
    };
    oneOf = ts: builtins.foldl' (acc: t: either acc t) (head ts) (tail ts);
    nullOr = t: mkType "null or ${t.name}" (v: v == null || t.check v);
    listOf = t: mkType "list of ${t.name}" (v: isList v && all t.check v);
    attrsOf = t: mkType "attribute set of ${t.name}" isAttrs;
    lazyAttrsOf = attrsOf;
    # nixpkgs merges a function option into a functor (lib/types.nix): only
    # lib.isFunction and lib.functionArgs still see it as the function it was.
    functionTo =
      t:
      mkType "function that evaluates to a(n) ${t.name}" isFunctionLike
      // {
        merge = values: {
          __functionArgs = functionArgsOf (lib.last values);
          __functor = _: args: (lib.last values) args;
        };
      };
    enum = values: mkType "one of ${concatStringsSep ", " (map toString values)}" (v: elem v values);
    submodule = _: mkType "submodule" (v: isAttrs v || isFunction v);
  };

  # Definitions of `path` in a module's config: [ { priority; value; } ].
  defsAt =
    priority: path: v:
    if isType "override" v then
      defsAt v.priority path v.content
    else if isType "if" v then
      (if v.condition then defsAt priority path v.content else [ ])
    else if isType "merge" v then
      concatMap (defsAt priority path) v.contents
    else if path == [ ] then
      [ { inherit priority; value = v; } ]
    else if isAttrs v && v ? ${head path} then
      defsAt priority (tail path) v.${head path}
    else
      [ ];

  mergeValues =
    name: opt: values:
    if opt ? _merge then
      opt._merge values
    else if opt ? type && mergeWith opt.type values != null then
      mergeWith opt.type values
    else if builtins.length values == 1 then
      head values
    else if all isList values then
      concatLists values
    else if all (v: isAttrs v && !isDerivation v) values then
      foldl' (a: b: a // b) { } values
    else if all isFunction values && opt ? type && opt.type.name == "module" then
      { imports = values; }
    else
      throw "The option `${name}' has conflicting definition values (stub lib: ${toString (builtins.length values)} definitions).";

  optionValue =
    path: opt: defsOfModules:
    let
      name = concatStringsSep "." path;
      defs = concatMap (defsAt 100 path) defsOfModules;
      best = foldl' (p: d: if d.priority < p then d.priority else p) 1500 defs;
      chosen = map (d: d.value) (filter (d: d.priority == best) defs);
      value =
        if defs == [ ] then
          (if opt ? default then opt.default else throw "The option `${name}' was accessed but has no value defined. Try setting the option.")
        else
          mergeValues name opt chosen;
      checked =
        if defs != [ ] && opt ? type && !(opt.type.check value) then
          throw "A definition for option `${name}' is not of type `${opt.type.name}'."
        else
          value;
    in
    (opt.apply or (x: x)) checked;

  mergeOptionTrees = a: b: a // mapAttrs (n: v: if a ? ${n} && !isType "option" v && !isType "option" a.${n} then mergeOptionTrees a.${n} v else v) b;

  evalModules =
    {
      modules,
      specialArgs ? { },
      ...
    }@evalArgs:
    let
      argsFor =
        f:
        mapAttrs (
          n: _:
          if n == "config" then
            config
          else if n == "options" then
            options
          else if n == "lib" then
            lib
          else if n == "extendModules" then
            extendModules
          else if specialArgs ? ${n} then
            specialArgs.${n}
          else
            config._module.args.${n} or (throw "stub lib: module argument `${n}' is not available")
        ) (functionArgs f);
      collect =
        file: m:
        let
          fromFile = isPath m || isString m;
          raw = if fromFile then import m else m;
          value = if isFunction raw then raw (argsFor raw) else raw;
          here = value._file or (if fromFile then toString m else file);
        in
        [ value ] ++ concatMap (collect here) (value.imports or [ ]);
      values = concatMap (collect "<unknown>") modules;
      defsOf = v: if v ? config || v ? options then v.config or { } else removeAttrs v [ "imports" "_file" "key" "_class" ];
      allDefs = map defsOf values;
      options = foldl' mergeOptionTrees {
        _module.args = lib.mkOption {
          type = types.raw;
          default = { };
        };
      } (map (v: v.options or { }) values);
      evalTree = path: opts: mapAttrs (n: o: if isType "option" o then optionValue (path ++ [ n ]) o allDefs else evalTree (path ++ [ n ]) o) opts;
      config = evalTree [ ] options;
      extendModules = { modules ? [ ] }: evalModules (evalArgs // { modules = evalArgs.modules ++ modules; });
    in
    {
      inherit config options extendModules;
      _type = "configuration";
    };

  lib = {
    inherit types evalModules hasPrefix isDerivation;
    genAttrs = names: f: listToAttrs (map (name: { inherit name; value = f name; }) names);
    assertMsg = pred: msg: pred || throw msg;
    throwIfNot = pred: msg: x: if pred then x else throw msg;
    warn = msg: x: builtins.trace "warning: ${msg}" x;
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: l: if c then l else [ ];
    optionalAttrs = c: a: if c then a else { };
    optionalString = c: s: if c then s else "";
    isFunction = isFunctionLike;
    functionArgs = functionArgsOf;
    last = l: builtins.elemAt l (builtins.length l - 1);
    mapAttrs = mapAttrs;
    mapAttrsToList = f: a: map (n: f n a.${n}) (attrNames a);
    attrNames = attrNames;
    attrValues = builtins.attrValues;
    concatStringsSep = concatStringsSep;
    concatMapStringsSep = sep: f: l: concatStringsSep sep (map f l);
    unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
    intersectLists = a: b: filter (x: elem x a) b;
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    literalMD = text: { _type = "literalMD"; inherit text; };
    importJSON = p: builtins.fromJSON (builtins.readFile p);
    makeBinPath = ps: concatStringsSep ":" (map (p: "${p}/bin") ps);
    getExe = p: "${p}/bin/${p.meta.mainProgram or p.pname or p.name}";
    licenses.mit = "mit";
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
    fileset = {
      unions = l: l;
      # The listed files and directories of root, copied as nixpkgs would.
      toSource =
        { root, fileset }:
        let
          wanted = map toString fileset;
        in
        builtins.path {
          name = "source";
          path = root;
          filter = p: _: any (w: p == w || hasPrefix (w + "/") p || hasPrefix (p + "/") w) wanted;
        };
    };
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = what: lib.mkOption { type = types.bool; default = false; description = "Whether to enable ${what}."; };
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkForce = lib.mkOverride 50;
    mkDefault = lib.mkOverride 1000;
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    setDefaultModuleLocation = file: m: { _file = file; imports = [ m ]; };
  };
in
lib
