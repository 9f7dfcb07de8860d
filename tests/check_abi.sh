#!/usr/bin/env bash
# ABI hygiene, usage: check_abi.sh LIBRECSYS.so RECSYS.H [LIBRECSYS.SYM]
#  - the shared library exports only recsys_ functions;
#  - exported == declared in the public header == listed in the version
#    script, which lists every symbol by name (one per line, no wildcard);
#  - every exported symbol carries, as its default version (sym@@NODE), the
#    node that the version script lists it under; a symbol is listed once;
#  - every node after the first inherits the one before it;
#  - the header compiles as strict C99 and as C++.
set -euo pipefail
export LC_ALL=C
so=$1
header=$2
sym=${3:-$(dirname "$0")/../lib/librecsys.sym}
fail=0
report() { echo "$1"; echo "$2" | sed 's/^/  /'; fail=1; }

# Defined functions as "name node" ("-" when unversioned).
exported_v=$(nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' |
  sed -E 's/^([^@]*)@@(.*)$/\1 \2/; t; s/^([^@]*)@(.*)$/\1 non-default:\2/; t; s/$/ -/' | sort -u)
exported=$(echo "$exported_v" | awk '{print $1}' | sort -u)
declared=$(grep -hoE '\brecsys_[a-z0-9_]+[[:space:]]*\(' "$header" | sed 's/[[:space:]]*($//' | sort -u)

# The version script without comments, as "name node" per listed symbol.
script=$(perl -0777 -pe 's{/\*.*?\*/}{}gs; s{#[^\n]*}{}g' "$sym")
listed_v=$(echo "$script" | awk '
  /^[[:space:]]*[A-Za-z_][A-Za-z0-9_.]*[[:space:]]*\{/ { node = $1; sub(/\{.*/, "", node); scope = "global"; next }
  /^[[:space:]]*(global|local):/ { scope = $1; sub(/:.*/, "", scope) }
  /^[[:space:]]*\}/ { next }
  scope == "global" {
    line = $0; sub(/^[[:space:]]*(global:)?[[:space:]]*/, "", line); sub(/[[:space:]]*$/, "", line)
    if (line == "") next
    if (line !~ /^[A-Za-z_][A-Za-z0-9_]*;$/) { print "BAD " line; next }
    sub(/;$/, "", line); print line " " node
  }')
bad=$(echo "$listed_v" | sed -n 's/^BAD //p')
listed_v=$(echo "$listed_v" | grep -v '^BAD ' || true)
listed=$(echo "$listed_v" | awk 'NF {print $1}' | sort)
dups=$(echo "$listed" | uniq -d)
listed=$(echo "$listed" | sort -u)

leaks=$(echo "$exported" | grep -v '^recsys_' || true)
[ -z "$leaks" ] || report "non-recsys symbols exported:" "$leaks"
[ -z "$bad" ] || report "$sym: global entries must be one plain symbol per line ('name;'):" "$bad"
[ -z "$dups" ] || report "$sym: listed more than once:" "$dups"
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
[ -z "$missing" ] || report "declared in recsys.h but not exported:" "$missing"
[ -z "$extra" ] || report "exported but not declared in recsys.h:" "$extra"
unlisted=$(comm -23 <(echo "$declared") <(echo "$listed"))
undeclared=$(comm -13 <(echo "$declared") <(echo "$listed"))
[ -z "$unlisted" ] || report "declared in recsys.h but not listed in $sym:" "$unlisted"
[ -z "$undeclared" ] || report "listed in $sym but not declared in recsys.h:" "$undeclared"
# Each exported symbol's default version must be the node it is listed in.
wrong=$(join -a 1 -o 0,1.2,2.2 -e - <(echo "$exported_v") <(echo "$listed_v" | sort -u) |
  awk '$2 != $3 {print $1 ": exported as " ($2 == "-" ? "unversioned" : $2) ", listed in " ($3 == "-" ? "no node" : $3)}')
[ -z "$wrong" ] || report "wrong version node:" "$wrong"
# Nodes: at least one; each later one closes with "} PREVIOUS;".
nodes=$(echo "$script" | sed -nE 's/^[[:space:]]*([A-Za-z_][A-Za-z0-9_.]*)[[:space:]]*\{.*/\1/p')
parents=$(echo "$script" | sed -nE 's/^[[:space:]]*\}[[:space:]]*([A-Za-z_][A-Za-z0-9_.]*)?[[:space:]]*;.*/\1/p')
[ -n "$nodes" ] || report "$sym: no version node" ""
want=$(echo "$nodes" | sed '$d' | sed '1s/^/\n/')
[ "$(echo "$parents")" = "$(echo "$want")" ] ||
  report "$sym: each node after the first must inherit the one before it:" "$(paste <(echo "$nodes") <(echo "$parents"))"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include <librecsys/recsys.h>\nint main(void){return recsys_version_number() > 0 ? 0 : 1;}\n' > "$tmp/c.c"
inc=$(dirname "$(dirname "$header")")
cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$inc" "$tmp/c.c" || { echo "header is not clean C99"; fail=1; }
if command -v c++ >/dev/null; then
  cp "$tmp/c.c" "$tmp/cxx.cpp"
  c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I"$inc" "$tmp/cxx.cpp" || { echo "header does not compile as C++"; fail=1; }
fi
echo "$(echo "$exported" | grep -c .) symbols in $(echo "$nodes" | grep -c .) version node(s)"
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
