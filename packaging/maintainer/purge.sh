# shellcheck shell=sh
# At purge: what the package made (install.sh records it), and only that.

virtnet_networks=/etc/virtnet/networks
virtnet_made_default=/var/lib/virtnet/package-default-network
virtnet_made_group=/var/lib/virtnet/package-group

# Removes the `default` network the package defined, if it is still that
# network (its UUID), as libvirt's packages remove theirs at purge.
virtnet_forget_default() {
    if [ -f "$virtnet_made_default" ] && [ -f "$virtnet_networks/default.xml" ] \
        && grep -q "<uuid>$(cat "$virtnet_made_default")</uuid>" "$virtnet_networks/default.xml"; then
        rm -f "$virtnet_networks/autostart/default.xml" "$virtnet_networks/default.xml"
    fi
    rm -f "$virtnet_made_default"
}

# Removes group libvirt if the package made it and no libvirt daemon
# package has come since.
virtnet_forget_group() {
    if [ -f "$virtnet_made_group" ] && getent group libvirt >/dev/null; then
        if ! dpkg-query -W -f='${Status}' libvirt-daemon-system 2>/dev/null | grep -q 'ok installed' \
            && ! rpm -q libvirt-daemon >/dev/null 2>&1; then
            groupdel libvirt || true
        fi
    fi
    rm -f "$virtnet_made_group"
}
