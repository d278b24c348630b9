#!/usr/bin/env bash
# Restart the web instances behind nginx (deploy/nginx.conf) one at a time, losing no request.
#
# Usage: deploy/rolling-restart.sh [PORT ...]        (default: 8001 8002)
#
# For each instance in turn: restart it (SIGTERM first: it drains, see README "Deploying"),
# wait until its /readyz answers 200, then wait SETTLE_SECONDS more before the next one, so
# that nginx, which skips an instance for `fail_timeout` (5 s) after it refused connections,
# sends to it again before the next instance goes. Meanwhile nginx passes every request the
# stopped instance refuses to the others (`proxy_next_upstream error`): nginx OSS has no
# active health checks, and needs none for this.
#
# Environment:
#   RESTART_COMMAND  restarts one instance, `{port}` replaced by its port; it must return once
#                    the old process has exited (default: `systemctl restart
#                    flet-backend-web@{port}`, which does)
#   READY_URL        the instance's readiness, `{port}` replaced (http://127.0.0.1:{port}/readyz)
#   READY_TIMEOUT    seconds to wait for it before giving up, leaving the rest untouched (60)
#   SETTLE_SECONDS   seconds between an instance being ready and the next restart (6)
set -euo pipefail

ports=("$@")
[ "${#ports[@]}" -gt 0 ] || ports=(8001 8002)
restart="${RESTART_COMMAND:-systemctl restart flet-backend-web@{port\}}"
ready="${READY_URL:-http://127.0.0.1:{port\}/readyz}"

for port in "${ports[@]}"; do
    echo "== restarting the instance on port $port"
    started=$SECONDS
    bash -c "${restart//\{port\}/$port}"
    echo "== port $port stopped after $((SECONDS - started)) s (drained)"
    url="${ready//\{port\}/$port}"
    deadline=$((SECONDS + ${READY_TIMEOUT:-60}))
    until curl --silent --fail --output /dev/null --max-time 2 "$url"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "== port $port is not ready after ${READY_TIMEOUT:-60} s: stopping here" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "== port $port is ready $((SECONDS - started)) s after the restart began"
    sleep "${SETTLE_SECONDS:-6}"
done
echo "== all ${#ports[@]} instances restarted"
