#!/bin/sh
# A tiny test runner: each case feeds input to wordcount and compares the count.
tool=$1
passed=0
failed=0
check() {
  got=$(printf '%b' "$2" | sh "$tool")
  if [ "$got" = "$3" ]; then
    echo "PASS $1"; passed=$((passed + 1))
  else
    echo "FAIL $1: expected $3, got $got"; failed=$((failed + 1))
  fi
}
check empty_input "" 0
check one_line "hello nix world\n" 3
check many_lines "a b\nc\n\nd e f\n" 6
check extra_spaces "  spaced   out  \n" 2
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
