{
  description = "provenance built-in example: a shell tool and its tests, no nixpkgs";

  outputs = { self }:
    let
      system = "x86_64-linux";
      # A static busybox, brought in content-addressed: the drv hash changes only when
      # the tools change, never when an unrelated file (README) does.
      tools = builtins.path { path = ./tools; name = "bootstrap-tools"; };
      src = builtins.path { path = ./src; name = "wordcount-src"; };
      tests = builtins.path { path = ./tests; name = "wordcount-tests"; };
      # The dev shell (`nix develop`), from the same busybox and no nixpkgs. nix develop
      # runs a shell's derivation only if its builder is named bash: this one is a
      # busybox sh script (dev/dev-env.sh) that writes the environment nix develop reads.
      devEnv = builtins.path { path = ./dev/dev-env.sh; name = "dev-env.sh"; };
      bash = derivation {
        name = "busybox-as-bash";
        inherit system devEnv;
        builder = "${tools}/bin/busybox";
        PATH = "${tools}/bin";
        args = [ "sh" "-c" ''
          busybox mkdir -p $out/bin
          { echo "#!${tools}/bin/busybox sh"; busybox cat $devEnv; } > $out/bin/bash
          busybox chmod 555 $out/bin/bash
        '' ];
      };
    in {
      devShells.${system}.default = derivation {
        name = "wordcount-dev-shell";
        inherit system;
        builder = "${bash}/bin/bash";
        PATH = "${tools}/bin";
      };
      checks.${system}.unit = derivation {
        name = "wordcount-unit-tests";
        inherit system src tests;
        builder = "${tools}/bin/busybox";
        PATH = "${tools}/bin";
        # Where the test results are: provenance reads this file (and no other) and
        # checks it against the runner's summary in the build log.
        testReport = "results.txt";
        # Results go to $out without clocks, so an honest rebuild is bit-identical.
        args = [ "sh" "-c" ''
          busybox mkdir -p $out
          busybox sh $tests/run.sh $src/wordcount.sh | busybox tee $out/results.txt
        '' ];
      };
    };
}
