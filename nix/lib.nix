# provenance's Nix library: hermetic test checks whose output is reproducible by
# construction. Needs no nixpkgs: `import ./lib.nix` gives the attribute set below.
# Documented in docs/nix-library.md.
let
  # Content-addressed: the drv hash changes only when these files change.
  builderScript = builtins.path { path = ./check-builder.sh; name = "check-builder.sh"; };
  normaliser = builtins.path { path = ./normalise-results.awk; name = "normalise-results.awk"; };
  formats = [ "junit" "tap" "summary" ];
in
{
  inherit formats normaliser;

  # A check derivation that runs `command` on a writable copy of `src` in the sandbox.
  #
  #   mkTestCheck {
  #     name = "unit"; system = "x86_64-linux";
  #     src = builtins.path { path = ./.; name = "src"; };
  #     toolchain = ...;            # a store path with bin/busybox (static) and the runner
  #     command = "pytest --junitxml=report.xml tests";
  #     format = "junit";           # "junit" | "tap" | "summary" (the runner's summary lines)
  #     report = "report.xml";      # where the command writes it (junit/tap), relative to src
  #   }
  #
  # $out holds only results.json: sorted {id, outcome} and the counts. Times, durations,
  # host names and the raw report stay in the build log. The build fails when the
  # command exits non-zero, the report lists a failed test, or the report cannot be
  # read completely. The derivation declares `testReport = "results.json"`: provenance
  # reads that file and no other (docs/test-results.md).
  mkTestCheck =
    { name
    , system
    , src
    , toolchain
    , command
    , format ? "junit"
    , report ? "report.xml"
    , busybox ? "${toolchain}/bin/busybox"
    , path ? [ "${toolchain}/bin" ]
    , env ? { }
    }:
    assert builtins.elem format formats
      || throw "mkTestCheck: format must be one of ${builtins.concatStringsSep ", " formats}, not ${format}";
    derivation (env // {
      inherit name system src toolchain format report busybox normaliser;
      builder = busybox;
      args = [ "sh" builderScript ];
      testCommand = command;
      testReport = "results.json";
      PATH = builtins.concatStringsSep ":" path;
    });
}
