#!/bin/sh
# A $BROWSER stand-in that first records the environment the broker gave it, then behaves
# exactly like browser-curl.sh (follows the authorization URL to the broker's callback).
#
# - Appends its environment (`env`, one VAR=value a line) and a line `----` to
#   $BROWSER_ENV_DUMP, if set: what the broker service passes to the programs it starts.
# - Everything else (BROWSER_LOG, BROWSER_TRACE, detaching from stdio): see browser-curl.sh.
if [ -n "${BROWSER_ENV_DUMP:-}" ]; then
  { env; echo ----; } >>"$BROWSER_ENV_DUMP"
fi
exec "$(dirname "$0")/browser-curl.sh" "$@"
