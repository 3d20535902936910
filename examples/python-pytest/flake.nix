{
  description = "calc: a small Python package whose pytest suite runs hermetically, no nixpkgs";

  outputs = { self }:
    let
      system = "x86_64-linux";
      # provenance's Nix library: ./nix is a symlink to the repo's own nix/ (one library,
      # never a copy). Copy this directory with `cp -rL` so the copy carries it. With
      # network access, use the flake input instead: inputs.provenance.url = "github:...";
      lib = import ./nix/lib.nix;
      # Python 3.11 + pytest from Debian packages, assembled by ./build-toolchain.sh and
      # pinned by NAR hash: the store path is content-addressed, so evaluation never
      # reads ./toolchain (gitignored), it only needs the path in the store.
      pin = import ./toolchain.nix;
      toolchain = builtins.path {
        path = ./toolchain;
        name = "python-pytest-toolchain";
        sha256 = pin.narHash;
      };
      # Only what the tests need: an edit to README.md or flake.nix does not change the drv.
      src = builtins.path {
        name = "calc-src";
        path = ./.;
        filter = path: type:
          let rel = builtins.substring (builtins.stringLength (toString ./.) + 1) 1000 path;
          in builtins.any (p: rel == p || builtins.substring 0 (builtins.stringLength p + 1) rel == p + "/")
            [ "src" "tests" "pyproject.toml" ];
      };
      # The sandbox has no /lib: start Python through the loader inside the toolchain.
      python = builtins.concatStringsSep " " [
        "${toolchain}/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
        "--library-path ${toolchain}/lib/x86_64-linux-gnu:${toolchain}/usr/lib/x86_64-linux-gnu"
        "${toolchain}/usr/bin/python3.11"
      ];
    in
    {
      checks.${system}.unit = lib.mkTestCheck {
        name = "calc-unit-tests";
        inherit system src toolchain;
        command = "${python} -m pytest -p no:cacheprovider -q --junitxml=report.xml";
        format = "junit";
        report = "report.xml";
        env = {
          PYTHONHOME = "${toolchain}/usr";
          PYTHONPATH = "${toolchain}/usr/lib/python3/dist-packages";
          PYTHONDONTWRITEBYTECODE = "1";
          PYTHONHASHSEED = "0";
        };
      };
    };
}
