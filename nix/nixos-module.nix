# services.provenance: the attestation service on NixOS (docs/service.md).
#
#   imports = [ provenance.nixosModules.default ];   # sets `package` from this flake
#   services.provenance.enable = true;
#
# A system user holds the key (made at first start, in stateDir/key, mode 0600); systemd
# listens on `socket` and starts the service at the first request. Agents run
# `provenance build --service /run/provenance/socket` (or set PROVENANCE_SERVICE).
{ config, lib, pkgs, ... }:
let
  cfg = config.services.provenance;
  inherit (lib) mkEnableOption mkIf mkOption types;
  provenance = "${cfg.package}/bin/provenance";
  # The key is made once, by the service's own user: nobody else ever holds it.
  makeKey = pkgs.writeShellScript "provenance-make-key" ''
    set -eu
    if [ ! -e ${cfg.stateDir}/key/provenance.key ]; then
      ${provenance} keygen --out-dir ${cfg.stateDir}/key
    fi
    cp ${cfg.stateDir}/key/provenance.pub ${cfg.stateDir}/provenance.pub
    chmod 0644 ${cfg.stateDir}/provenance.pub
  '';
in
{
  options.services.provenance = {
    enable = mkEnableOption "the provenance attestation service";
    package = mkOption {
      type = types.package;
      description = "The provenance package (nixosModules.default sets this flake's).";
    };
    user = mkOption {
      type = types.str;
      default = "provenance";
      description = "The service's user: the only one who can read its key.";
    };
    group = mkOption {
      type = types.str;
      default = "provenance";
      description = "The service user's group.";
    };
    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/provenance";
      description = "Mirrors, cache and key (under /var/lib: systemd's StateDirectory).";
    };
    socket = mkOption {
      type = types.str;
      default = "/run/provenance/socket";
      description = "The Unix socket agents connect to.";
    };
    allowedGroup = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Only members of this group may ask (socket mode 0660); null: every local user.";
    };
    workers = mkOption {
      type = types.ints.positive;
      default = 4;
      description = "Requests built at once; more wait their turn.";
    };
    trustedByDaemon = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Add the service's user to nix.settings.trusted-users, so that the sandbox options it
        forces are in force and read back (statements say daemon-trusted-user). Without it the
        daemon's own nix.conf decides (daemon-nix-conf: read, not proven).
      '';
    };
  };

  config = mkIf cfg.enable {
    users.users.${cfg.user} = {
      isSystemUser = true;
      group = cfg.group;
      home = cfg.stateDir;
      description = "provenance attestation service";
    };
    users.groups.${cfg.group} = { };
    nix.settings.trusted-users = mkIf cfg.trustedByDaemon [ cfg.user ];

    systemd.sockets.provenance = {
      description = "provenance attestation service socket";
      wantedBy = [ "sockets.target" ];
      socketConfig = {
        ListenStream = cfg.socket;
        SocketMode = if cfg.allowedGroup == null then "0666" else "0660";
      } // lib.optionalAttrs (cfg.allowedGroup != null) { SocketGroup = cfg.allowedGroup; };
    };

    systemd.services.provenance = {
      description = "provenance attestation service";
      documentation = [ "https://github.com/provenance-nix/provenance/blob/main/docs/service.md" ];
      requires = [ "provenance.socket" ];
      after = [ "provenance.socket" "nix-daemon.socket" ];
      wants = [ "nix-daemon.socket" ];
      path = [ config.nix.package pkgs.git ];
      environment.NIX_REMOTE = "daemon";
      serviceConfig = {
        User = cfg.user;
        Group = cfg.group;
        StateDirectory = lib.removePrefix "/var/lib/" cfg.stateDir;
        StateDirectoryMode = "0755";
        UMask = "0077";
        ExecStartPre = makeKey;
        ExecStart = lib.escapeShellArgs [
          provenance "serve"
          "--socket" cfg.socket
          "--state-dir" cfg.stateDir
          "--workers" (toString cfg.workers)
        ];
        Restart = "on-failure";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = "read-only";
        ReadWritePaths = [ cfg.stateDir ];
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectControlGroups = true;
        RestrictAddressFamilies = [ "AF_UNIX" ];
        RestrictSUIDSGID = true;
        LockPersonality = true;
      };
    };
  };
}
