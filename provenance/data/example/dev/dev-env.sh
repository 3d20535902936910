# The builder of this flake's dev shell, run by busybox sh (no nixpkgs, no bash).
#
# `nix develop` runs a shell's derivation only when its builder is named `bash`, and
# gives it Nix's get-env.sh, which needs a real bash, to dump the build environment
# as JSON into $out. busybox sh cannot run that script; this one writes the same JSON
# itself: every exported variable, no shell functions. `nix develop` reads it back and
# starts the user's own bash with those variables (PATH in front of the user's PATH).
# As a plain build it writes the same file.
export IN_NIX_SHELL=impure  # what get-env.sh sets too
export outputs="${outputs:-out}"  # nix develop needs it; a plain derivation() sets none
first=1
for output in $outputs; do
  eval "path=\$$output"
  if [ -n "$first" ]; then
    busybox awk '
      function esc(s,    out, c) {
        out = ""
        while (match(s, /["\\\001-\037]/)) {
          c = substr(s, RSTART, 1)
          out = out substr(s, 1, RSTART - 1)
          if (c == "\"" || c == "\\") out = out "\\" c
          else if (c == "\n") out = out "\\n"
          else if (c == "\t") out = out "\\t"
          else if (c == "\r") out = out "\\r"
          else out = out sprintf("\\u%04x", code[c])
          s = substr(s, RSTART + 1)
        }
        return "\"" out s "\""
      }
      BEGIN {
        for (i = 1; i < 32; i++) code[sprintf("%c", i)] = i
        # the shell'"'"'s own bookkeeping, as get-env.sh leaves it out
        split("_ PWD OLDPWD SHLVL", skip, " ")
        for (i in skip) skipped[skip[i]] = 1
        printf "{\n  \"bashFunctions\": {},\n  \"variables\": {"
        n = 0
        for (k in ENVIRON) {
          if (k in skipped || k !~ /^[A-Za-z_][A-Za-z0-9_]*$/) continue
          printf "%s\n    %s: {\"type\": \"exported\", \"value\": %s}", (n++ ? "," : ""), esc(k), esc(ENVIRON[k])
        }
        printf "\n  }\n}\n"
      }' > "$path"
    first=
  else
    : > "$path"
  fi
done
