# shellcheck shell=sh
# At removal, before the daemon goes.

# Stops every running network through virtnetd, when it runs (asking the
# bus whether it does never starts it).
virtnet_stop_networks() {
    if dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.virtnet 2>/dev/null | grep -q 'boolean true'; then
        virtnet net-list --name | while IFS= read -r name; do
            if [ -n "$name" ]; then
                virtnet net-destroy "$name" >/dev/null || echo "virtnet: network $name not stopped" >&2
            fi
        done
    fi
}
