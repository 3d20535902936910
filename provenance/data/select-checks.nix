# Applied to a flake's `checks` output by `nix eval --apply`. @WANT@ and @SYSTEM@ are
# replaced by escaped Nix string literals (a JSON list of names or "null", and the
# system double). Only the wanted checks of the one system are forced to drvPaths.
checks:
let
  want = builtins.fromJSON @WANT@;
  system = @SYSTEM@;
  forSystem = cs:
    let
      names = builtins.attrNames cs;
      pick = if want == null then names else builtins.filter (n: cs ? ${n}) want;
      # drvPath and output paths come from the same evaluation; outPath forces no build.
      outputsOf = c: builtins.listToAttrs
        (map (o: { name = o; value = c.${o}.outPath; }) (c.outputs or [ "out" ]));
      drvOf = c:
        if builtins.isAttrs c && c ? drvPath
        then { drvPath = c.drvPath; outputs = outputsOf c; }
        else null;
    in {
      inherit names;
      drvs = builtins.listToAttrs (map (n: { name = n; value = drvOf cs.${n}; }) pick);
    };
in {
  systems = builtins.attrNames checks;
  selected = if checks ? ${system} then forSystem checks.${system} else null;
}
