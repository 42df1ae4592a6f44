#!/bin/sh
# A timed $BROWSER stand-in for the login benchmark. Like tests/e2e/peers/browser-curl.sh it
# follows the authorization URL ($1) with curl through the authorization server's automatic
# login and consent, but hop by hop, so that it can tell the browser's own time (everything
# before the redirect to the client's loopback callback: starting up, the authorization
# endpoint, login, consent) from the client's (the callback onwards: code redemption).
#
# Appends one line "<start_ns> <callback_ns> <end_ns> <hops> <final_http_code>" (wall clock,
# date +%s%N) to $BROWSER_TIMING if set. Diagnostics go to $BROWSER_TRACE if set.
set -u
start=$(date +%s%N)
url="${1:-}"
trace="${BROWSER_TRACE:-/dev/null}"
exec </dev/null >/dev/null 2>>"$trace"

case "$url" in
  http://*|https://*) ;;
  *) echo "browser-timed: refusing non-http(s) URL: $url" >&2; exit 2 ;;
esac

# The client's redirect_uri (URL-decoded) tells where the browser part ends.
enc=$(printf '%s' "$url" | sed -n 's/.*[?&]redirect_uri=\([^&]*\).*/\1/p')
# (sh's printf has no \xHH: decode the characters a loopback redirect URI can hold.)
redirect=$(printf '%s' "$enc" | sed 's/%3[Aa]/:/g; s/%2[Ff]/\//g; s/%2[Ee]/./g; s/%5[Bb]/[/g; s/%5[Dd]/]/g; s/%25/%/g')
if [ -z "$redirect" ]; then
  echo "browser-timed: no redirect_uri in $url" >&2
  exit 2
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/browser-timed.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT HUP INT TERM

next="$url"
hops=0
callback=""
code=0
while [ "$hops" -lt 25 ]; do
  case "$next" in
    "$redirect"*) callback=$(date +%s%N) ;;
  esac
  out=$(curl -sS --max-time 60 --proto =http,https -c "$dir/cookies" -b "$dir/cookies" \
        -o "$dir/page" -w '%{http_code} %{redirect_url}' "$next") || { echo "browser-timed: curl failed at $next" >&2; exit 1; }
  hops=$((hops + 1))
  code=${out%% *}
  loc=${out#* }
  if [ -n "$callback" ] || [ -z "$loc" ] || [ "$loc" = "$out" ]; then
    break
  fi
  next="$loc"
done
end=$(date +%s%N)
echo "browser-timed: hops=$hops code=$code callback=${callback:-none}" >&2
if [ -n "${BROWSER_TIMING:-}" ]; then
  echo "$start ${callback:-0} $end $hops $code" >>"$BROWSER_TIMING"
fi
[ -n "$callback" ] || exit 1
exit 0
