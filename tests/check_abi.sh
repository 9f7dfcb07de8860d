#!/usr/bin/env bash
# ABI hygiene: the shared library exports exactly the recsys_ functions that
# the public header declares, under the LIBRECSYS_0 version node, and the
# header compiles as strict C99 and as C++.
set -euo pipefail
so=$1
header=$2
fail=0
exported=$(nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | sed 's/@.*//' | sort -u)
declared=$(grep -hoE '\brecsys_[a-z0-9_]+[[:space:]]*\(' "$header" | sed 's/[[:space:]]*($//' | sort -u)
leaks=$(echo "$exported" | grep -v '^recsys_' || true)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
[ -z "$leaks" ] || { echo "non-recsys symbols exported:"; echo "$leaks"; fail=1; }
[ -z "$missing" ] || { echo "declared but not exported:"; echo "$missing"; fail=1; }
[ -z "$extra" ] || { echo "exported but not declared:"; echo "$extra"; fail=1; }
grep -q 'recsys_ctx_new@@LIBRECSYS_0' <<<"$(nm -D --defined-only "$so")" || { echo "no version node"; fail=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include <librecsys/recsys.h>\nint main(void){return recsys_version_number() > 0 ? 0 : 1;}\n' > "$tmp/c.c"
inc=$(dirname "$(dirname "$header")")
cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$inc" "$tmp/c.c" || { echo "header is not clean C99"; fail=1; }
if command -v c++ >/dev/null; then
  cp "$tmp/c.c" "$tmp/cxx.cpp"
  c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I"$inc" "$tmp/cxx.cpp" || { echo "header does not compile as C++"; fail=1; }
fi
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
