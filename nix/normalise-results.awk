# Normalise a test report into sorted "id<TAB>outcome" lines (busybox awk, POSIX awk).
#
# Runs INSIDE the Nix sandbox, so it may rely on nothing but awk: no Python, no host.
# provenance/testresults.py implements the same rules in Python and the test suite
# checks that both agree on every recorded report in tests/fixtures/reports/.
#
#   awk -v format=junit|tap|summary -f normalise-results.awk REPORT
#
# Output (stdout), one line per test, unsorted (the caller sorts with LC_ALL=C):
#   T<TAB>id<TAB>outcome        outcome: passed | failed | skipped
# plus, for format=summary, one line "C<TAB>passed<TAB>failed<TAB>skipped".
# Exit 2: the report cannot be read safely (DTD/entity declarations) or has no results.
#
# Rules (docs/test-results.md):
# - JUnit: one entry per <testcase>; id = name, or classname::name when classname is
#   set and differs from name. A <skipped> child makes it skipped (even with a
#   failure: node's todo tests); else a <failure> or <error> child makes it failed;
#   else passed (nextest's flakyFailure/rerunFailure children do not count).
# - TAP: every result line whose test has no subtests (TAP 14 indents subtests by 4
#   spaces); id = the "# Subtest:" names above it and the description, joined by
#   " > ", or the test number when there is no description. "# SKIP"/"# TODO" ->
#   skipped; else "ok" -> passed, "not ok" -> failed. YAML blocks are ignored.
# - summary: the last line with "N passed"/"N failed" words (pytest, cargo, ...);
#   errors count as failed, ignored/skipped/deselected as skipped.
# - ids: entities decoded, runs of space/tab/CR/LF become one space, other control
#   characters are dropped, leading/trailing spaces trimmed.

function clean(s) {
    gsub(/[ \t\r\n]+/, " ", s)
    gsub(/[\001-\037]/, "", s)
    sub(/^ /, "", s)
    sub(/ $/, "", s)
    return s
}

function hexval(h,    i, c, v) {
    v = 0
    h = tolower(h)
    for (i = 1; i <= length(h); i++) {
        c = index("0123456789abcdef", substr(h, i, 1))
        v = v * 16 + c - 1
    }
    return v
}

# XML entity decoding: numeric references in the ASCII range, the five named ones.
function decode(s,    out, m, ref, code) {
    out = ""
    while (match(s, /&#[xX]?[0-9A-Fa-f]+;/)) {
        ref = substr(s, RSTART + 2, RLENGTH - 3)
        if (ref ~ /^[xX]/) code = hexval(substr(ref, 2))
        else code = ref + 0
        out = out substr(s, 1, RSTART - 1)
        if (code > 0 && code < 128) out = out sprintf("%c", code)
        else out = out substr(s, RSTART, RLENGTH)
        s = substr(s, RSTART + RLENGTH)
    }
    s = out s
    gsub(/&lt;/, "<", s)
    gsub(/&gt;/, ">", s)
    gsub(/&quot;/, "\"", s)
    gsub(/&apos;/, "'", s)
    gsub(/&amp;/, "\\&", s)
    return s
}

# The tag part of a record (up to the first ">" outside quotes).
function tagpart(rec,    i, c, q) {
    q = ""
    for (i = 1; i <= length(rec); i++) {
        c = substr(rec, i, 1)
        if (q != "") { if (c == q) q = "" }
        else if (c == "\"" || c == "'") q = c
        else if (c == ">") return substr(rec, 1, i)
    }
    return rec
}

function attr(tag, name,    re, v) {
    re = "[ \t\r\n]" name "[ \t\r\n]*=[ \t\r\n]*(\"[^\"]*\"|'[^']*')"
    if (!match(tag, re)) return ""
    v = substr(tag, RSTART, RLENGTH)
    sub(/^[^=]*=[ \t\r\n]*/, "", v)
    return decode(substr(v, 2, length(v) - 2))
}

function emit(id, outcome) {
    id = clean(id)
    printf "T\t%s\t%s\n", id, outcome
    n++
}

function junit_case_done(    outcome, id) {
    outcome = skipped ? "skipped" : (failed ? "failed" : "passed")
    id = (cls == "" || cls == name) ? name : cls "::" name
    emit(id, outcome)
    incase = 0
}

function junit(rec,    tag) {
    if (skipblock != "") {
        if (index(rec, skipblock)) skipblock = ""
        return
    }
    if (rec ~ /^!\[CDATA\[/) { if (!index(rec, "]]>")) skipblock = "]]>"; return }
    if (rec ~ /^!--/) { if (!index(rec, "-->")) skipblock = "-->"; return }
    if (rec ~ /^!(DOCTYPE|ENTITY)/) { bad = "DTD or entity declaration"; exit 2 }
    if (rec ~ /^testcase([ \t\r\n\/>]|$)/) {
        tag = tagpart(rec)
        name = attr(tag, "name")
        cls = attr(tag, "classname")
        skipped = 0
        failed = 0
        incase = 1
        if (tag ~ /\/[ \t\r\n]*>$/) junit_case_done()
        return
    }
    if (!incase) return
    if (rec ~ /^\/testcase([ \t\r\n>]|$)/) { junit_case_done(); return }
    if (rec ~ /^skipped([ \t\r\n\/>]|$)/) skipped = 1
    else if (rec ~ /^(failure|error)([ \t\r\n\/>]|$)/) failed = 1
}

function tap(line,    ind, depth, rest, ok, num, desc, dir, d, id, parent) {
    if (inyaml) {
        if (line ~ /^[ ]*\.\.\.[ \t]*$/) inyaml = 0
        return
    }
    if (line ~ /^[ ]*---[ \t]*$/) { inyaml = 1; return }
    match(line, /^ */)
    ind = RLENGTH
    depth = int(ind / 4)
    rest = substr(line, ind + 1)
    if (rest ~ /^# Subtest: /) { sub_name[depth] = clean(substr(rest, 12)); return }
    if (rest !~ /^(not )?ok([ \t]|$)/) return
    ok = (rest !~ /^not /)
    sub(/^(not )?ok[ \t]*/, "", rest)
    num = ""
    if (match(rest, /^[0-9]+/)) { num = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1) }
    dir = ""
    if (match(rest, /[ \t]#[ \t]*([Ss][Kk][Ii][Pp]|[Tt][Oo][Dd][Oo])/)) {
        dir = tolower(substr(rest, RSTART, RLENGTH))
        rest = substr(rest, 1, RSTART - 1)
    } else if (match(rest, /^#[ \t]*([Ss][Kk][Ii][Pp]|[Tt][Oo][Dd][Oo])/)) {
        dir = tolower(substr(rest, RSTART, RLENGTH))
        rest = ""
    }
    sub(/^[ \t]*-[ \t]*/, "", rest)
    sub(/^[ \t]+/, "", rest)
    desc = clean(rest)
    if (desc == "") desc = num
    # A result that closes subtests (seen one level deeper) is a parent, not a test.
    parent = seen[depth + 1]
    for (d in seen) if (d + 0 > depth) delete seen[d]
    seen[depth] = 1
    if (parent) return
    id = ""
    for (d = 0; d < depth; d++) id = id ((d in sub_name) ? sub_name[d] : "?") " > "
    id = id desc
    if (dir ~ /skip|todo/) emit(id, "skipped")
    else emit(id, ok ? "passed" : "failed")
}

function summary(line,    p, f, s, w, rest, cnt, word) {
    if (line !~ /[0-9]+ (passed|failed)/) return
    p = 0; f = 0; s = 0
    rest = line
    while (match(rest, /[0-9]+ [a-z]+/)) {
        w = substr(rest, RSTART, RLENGTH)
        rest = substr(rest, RSTART + RLENGTH)
        cnt = w + 0
        word = substr(w, index(w, " ") + 1)
        if (word == "passed") p += cnt
        else if (word == "failed" || word == "error" || word == "errors") f += cnt
        else if (word == "skipped" || word == "ignored" || word == "deselected") s += cnt
    }
    last = p "\t" f "\t" s
}

BEGIN {
    n = 0
    skipblock = ""
    bad = ""
    last = ""
    if (format == "junit") RS = "<"
    else if (format != "tap" && format != "summary") { bad = "unknown format " format; exit 2 }
}

{
    if (format == "junit") junit($0)
    else if (format == "tap") { sub(/\r$/, ""); tap($0) }
    else summary($0)
}

END {
    if (bad != "") { print "normalise-results: " bad > "/dev/stderr"; exit 2 }
    if (format == "summary") {
        if (last == "") { print "normalise-results: no 'N passed, N failed' line" > "/dev/stderr"; exit 2 }
        print "C\t" last
        exit 0
    }
    if (n == 0) { print "normalise-results: no test results in the " format " report" > "/dev/stderr"; exit 2 }
}
