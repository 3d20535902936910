{
  description = "provenance: signed, drv-hash-bound attestations for Nix flake checks";

  # nixpkgs is used only by packages, apps, devShells and checks. `lib` needs none of it:
  # `nix eval .#lib` works without fetching nixpkgs (docs/nix-library.md).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      lib = import ./nix/lib.nix;
      # Linux only: the checks build with a static busybox (pkgsStatic) in the Linux sandbox.
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: builtins.listToAttrs (map (system: {
        name = system;
        value = f system nixpkgs.legacyPackages.${system};
      }) systems);
      deps = ps: [ ps.typer ps.pydantic ps.cryptography ps.tomli-w ];
      package = pkgs: pkgs.python3Packages.buildPythonApplication {
        pname = "provenance";
        version = "0.1.0";
        pyproject = true;
        src = builtins.path { path = ./.; name = "provenance-src"; filter = p: _: baseNameOf p != ".venv"; };
        build-system = [ pkgs.python3Packages.setuptools ];
        dependencies = deps pkgs.python3Packages;
        doCheck = false; # the test suite runs as checks.<system>.tests, through lib.mkTestCheck
      };
    in
    {
      inherit lib;

      # The attestation service (docs/service.md): services.provenance.enable = true.
      nixosModules.default = { pkgs, lib, ... }: {
        imports = [ ./nix/nixos-module.nix ];
        services.provenance.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };

      packages = forAll (system: pkgs: rec {
        provenance = package pkgs;
        default = provenance;
      });

      apps = forAll (system: pkgs: {
        default = { type = "app"; program = "${self.packages.${system}.default}/bin/provenance"; };
      });

      # Agents run `provenance build` inside `nix develop`.
      devShells = forAll (system: pkgs: {
        default = pkgs.mkShell {
          packages = [ self.packages.${system}.default pkgs.nix pkgs.git ];
        };
      });

      # This project's own unit tests, through the library (tests needing nix or git
      # inside the sandbox are deselected: the sandbox has neither a store nor a daemon;
      # tests/integration is left out whole: every test there needs nix, and its modules
      # import test-only packages, such as in_toto_attestation, that nixpkgs lacks).
      checks = forAll (system: pkgs: {
        tests = import ./nix/pytest.nix { inherit pkgs lib; } {
          name = "provenance-tests";
          src = builtins.path { path = ./.; name = "provenance-src"; filter = p: _: baseNameOf p != ".venv"; };
          pythonPackages = ps: deps ps ++ [ ps.securesystemslib ps.protobuf ps.hypothesis ];
          pytestFlags = [ "-m" "not nix" "-p" "no:cacheprovider" "--ignore=tests/integration" "tests" ];
          extraPath = [ pkgs.git pkgs.pkgsStatic.busybox ];
        };
      });
    };
}
