# nixpkgs-flavoured helper for pytest users: a Python environment from nixpkgs and
# mkTestCheck from ./lib.nix. Documented (with an example flake) in docs/nix-library.md.
#
#   checks.${system}.unit = import ./nix/pytest.nix { inherit pkgs; } {
#     name = "unit";
#     src = ./.;
#     pythonPackages = ps: [ ps.pydantic ];
#     pytestFlags = [ "tests" "-m" "not nix" ];
#   };
{ pkgs, lib ? import ./lib.nix }:
{ name
, src
, pythonPackages ? (ps: [ ])
, pytestFlags ? [ ]
, extraPath ? [ ]
, env ? { }
}:
let
  python = pkgs.python3.withPackages (ps: [ ps.pytest ] ++ pythonPackages ps);
in
lib.mkTestCheck {
  inherit name src env;
  system = pkgs.stdenv.hostPlatform.system;
  toolchain = python;
  busybox = "${pkgs.busybox}/bin/busybox";
  path = [ "${python}/bin" "${pkgs.busybox}/bin" ] ++ map (p: "${p}/bin") extraPath;
  # -p no:cacheprovider: the source copy is writable, but a cache dir is noise.
  command = "python -m pytest -p no:cacheprovider --junitxml=report.xml "
    + pkgs.lib.escapeShellArgs pytestFlags;
  format = "junit";
  report = "report.xml";
}
