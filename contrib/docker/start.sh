#!/bin/sh
# The container's entrypoint: write a configuration on the first start when there is none
# (SERVER_NAME names the server), then replace this shell with Ranvier in the foreground
# (exec), so the SIGTERM of `docker stop` reaches Ranvier itself.
set -eu

config="${RANVIER_CONFIG_PATH:-/data/homeserver.yaml}"

if [ ! -e "$config" ]; then
    if [ -z "${SERVER_NAME:-}" ]; then
        echo "There is no $config yet. Set SERVER_NAME (the part after ':' in user IDs," \
            "e.g. -e SERVER_NAME=example.org) to have one generated on this first start," \
            "or mount a homeserver.yaml there." >&2
        exit 1
    fi
    ranvier generate-config --server-name "$SERVER_NAME" -c "$config" \
        --data-dir "$(dirname "$config")"
    # inside a container the listener must take connections from outside it: the published
    # port arrives on the container's own address, not on 127.0.0.1
    sed -i "s/bind_addresses: \['127.0.0.1'\]/bind_addresses: ['0.0.0.0']/" "$config"
    if ! grep -q "bind_addresses: \['0.0.0.0'\]" "$config"; then
        echo "Could not open the generated listener in $config to other addresses;" \
            "set its bind_addresses to ['0.0.0.0'] and start again." >&2
        exit 1
    fi
    echo "Generated $config for $SERVER_NAME; edit it and restart the container to change it."
fi

exec ranvier run -c "$config" "$@"
