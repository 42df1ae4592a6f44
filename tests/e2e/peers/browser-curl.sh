#!/bin/sh
# A $BROWSER stand-in for end-to-end tests: "opens" the authorization URL ($1) by following it
# with curl (cookies kept, redirects followed) exactly as a browser would, through the
# authorization server's login and consent (as.mjs --login auto) to the broker's loopback
# callback, whose page is the last response.
#
# - Appends one line "opened" to $BROWSER_LOG (if set) for every invocation, so tests can
#   count browser opens.
# - Detaches from the caller's stdio at once (the broker runs $BROWSER directly, without a
#   shell, and does not wait for it); diagnostics go to $BROWSER_TRACE if set.
# - Exits 0 once the final page was fetched, non-zero (curl's code) if following failed.
set -u

url="${1:-}"
trace="${BROWSER_TRACE:-/dev/null}"
exec </dev/null >/dev/null 2>>"$trace"

if [ -n "${BROWSER_LOG:-}" ]; then
  echo opened >>"$BROWSER_LOG"
fi

case "$url" in
  http://*|https://*) ;;
  *) echo "browser-curl: refusing non-http(s) URL: $url" >&2; exit 2 ;;
esac

dir=$(mktemp -d "${TMPDIR:-/tmp}/browser-curl.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT HUP INT TERM

# -L follows every redirect, including the last one to http://127.0.0.1:PORT/callback?code=..
curl -sS -L --max-redirs 20 --max-time 60 --proto =http,https --proto-redir =http,https \
  -c "$dir/cookies" -b "$dir/cookies" \
  -o "$dir/page" -w '%{http_code} %{url_effective}\n' \
  "$url" >"$dir/result"
rc=$?
echo "browser-curl: rc=$rc $(cat "$dir/result" 2>/dev/null)" >&2
if [ "$rc" -ne 0 ]; then
  exit "$rc"
fi
exit 0
