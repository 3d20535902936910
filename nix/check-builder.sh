# Builder of mkTestCheck (nix/lib.nix), run as `busybox sh check-builder.sh` in the sandbox.
#
# Runs the test command in a writable copy of the source, keeps everything with a clock
# in it (the command's output, the raw report) in the build log, and writes only the
# normalised results to $out/results.json: sorted test ids and outcomes, no times, no
# durations, no host names. Fails the build when the command fails or a test failed.
#
# Environment (set by mkTestCheck): busybox, src, testCommand, format, report,
# normaliser, out, TMPDIR, PATH.
# NOTE: never redirect this shell's own stderr (`exec 2>...`): Nix takes EOF on the log
# pipe as the end of the build and kills the builder.

bb="$busybox"
export HOME="$TMPDIR/home" LC_ALL=C TZ=UTC
$bb mkdir -p "$HOME"
$bb cp -r "$src" "$TMPDIR/src"
$bb chmod -R u+w "$TMPDIR/src"
cd "$TMPDIR/src" || exit 2

echo "mkTestCheck: running: $testCommand"
{ $bb sh -c "$testCommand"; echo $? > "$TMPDIR/rc"; } 2>&1 | $bb tee "$TMPDIR/output.log"
rc=$($bb cat "$TMPDIR/rc")

if [ "$format" = summary ]; then
  input="$TMPDIR/output.log"
else
  input="$report"
  if [ ! -f "$input" ]; then
    echo "mkTestCheck: the command (exit $rc) wrote no $format report at $report"
    exit 1
  fi
  # The raw report (with its timestamps and durations) goes to the log, never to $out.
  # Each line is prefixed, so that no line of it reads as a runner's summary there.
  echo "mkTestCheck: --- raw $format report $report ---"
  $bb sed 's/^/| /' "$input"
  echo
  echo "mkTestCheck: --- end of raw report ---"
fi

$bb awk -v format="$format" -f "$normaliser" "$input" > "$TMPDIR/lines" || {
  echo "mkTestCheck: cannot normalise the $format report"
  exit 2
}
$bb mkdir -p "$out"
# Sorted by id, then outcome (bytewise, LC_ALL=C); rendered as one JSON document.
{ $bb grep '^C' "$TMPDIR/lines"; $bb grep '^T' "$TMPDIR/lines" | $bb sort; } \
  | $bb awk -F '\t' -v format="$format" -v render=json -f "$normaliser" > "$out/results.json"
verdict=$?

if [ "$rc" != 0 ]; then
  echo "mkTestCheck: the test command failed (exit $rc)"
  exit "$rc"
fi
if [ "$verdict" != 0 ]; then
  echo "mkTestCheck: the report lists failed tests"
  exit 1
fi
echo "mkTestCheck: results in $out/results.json"
