# Applied to a flake's `checks` output by `nix eval --apply`. @WANT@ and @SYSTEM@ are
# replaced by escaped Nix string literals (a JSON list of names or "null", and the
# system double). Only the wanted checks of the one system are forced to drvPaths.
#
# A check counts only when its drvPath is produced here, by this evaluation: the
# derivation is instantiated again from its own `drvAttrs` with `derivationStrict`, and
# the check's drvPath and outPath must be what that call returns. A plain attribute set
# naming some other drvPath, or a string given derivation context with
# `builtins.appendContext`, has no `drvAttrs` that derive it, so it is reported as a
# problem (never forced into a drvPath). docs/architecture.md says why this holds.
checks:
let
  want = builtins.fromJSON @WANT@;
  system = @SYSTEM@;
  # For messages only: the value as JSON-safe text, without its string context.
  show = v: if builtins.isString v then builtins.unsafeDiscardStringContext v else builtins.typeOf v;
  drvOf = c:
    if !(builtins.isAttrs c) then
      { problem = "not-attrs"; type = builtins.typeOf c; }
    else if (c.type or null) != "derivation" then
      { problem = "not-derivation"; }
    else if !(c ? drvAttrs && builtins.isAttrs c.drvAttrs) then
      { problem = "no-drvAttrs"; claimed = show (c.drvPath or null); }
    else
      let
        strict = builtins.derivationStrict c.drvAttrs;
        # The outputs `derivation` makes (its default, and 2.8's __ignoreNulls case):
        # named, not "every attribute but drvPath", should derivationStrict grow more.
        declared = c.drvAttrs.outputs or [ "out" ];
        outputs = builtins.listToAttrs (map (o: { name = o; value = strict.${o}; })
          (if builtins.isList declared then declared else [ "out" ]));
        claimed = c.drvPath or null;
        outName = if builtins.isString (c.outputName or null) then c.outputName else "out";
        outClaimed = c.outPath or null;
      in
      if !(builtins.isString claimed) || claimed != strict.drvPath then
        { problem = "drvPath"; claimed = show claimed; derived = strict.drvPath; }
      else if !(outputs ? ${outName})
        || !(builtins.isString outClaimed) || outClaimed != outputs.${outName} then
        { problem = "outPath"; claimed = show outClaimed; output = outName; }
      else
        { drvPath = strict.drvPath; inherit outputs; };
  forSystem = cs:
    let
      names = builtins.attrNames cs;
      pick = if want == null then names else builtins.filter (n: cs ? ${n}) want;
    in {
      inherit names;
      drvs = builtins.listToAttrs (map (n: { name = n; value = drvOf cs.${n}; }) pick);
    };
in {
  systems = builtins.attrNames checks;
  selected = if checks ? ${system} then forSystem checks.${system} else null;
}
