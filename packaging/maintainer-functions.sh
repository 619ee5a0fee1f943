# shellcheck shell=sh
# Shell functions of virtnet's maintainer scripts, shared by the Debian
# package (packaging/debian/*) and the RPM (rpm/virtnet.spec): the package
# scripts put this file where a script says #VIRTNET_FUNCTIONS#.

virtnet_networks=/etc/virtnet/networks
virtnet_libvirt_default=/etc/libvirt/qemu/networks/default.xml
# What the package made, so that purge removes that and nothing else: the
# UUID of the `default` network it defined, and the group it added.
virtnet_made_default=/var/lib/virtnet/package-default-network
virtnet_made_group=/var/lib/virtnet/package-group

# The third number of the first subnet 192.168.N.0/24 that no route of the
# host has, trying 122, then 124 to 254: libvirt's RPM picks the subnet of
# its `default` network this way.
virtnet_free_subnet() {
    routes=" $(ip -4 route show 2>/dev/null | cut -d' ' -f1 | tr '\n' ' ') "
    for third in 122 $(seq 124 254); do
        case $routes in
            *" 192.168.$third.0/24 "*) ;;
            *) echo "$third"; return 0 ;;
        esac
    done
    return 1
}

# Defines the `default` network as libvirt's packages do (NAT on virbr0,
# DHCP, autostarted), unless virtnet or libvirt has a network of that name.
virtnet_define_default() {
    if [ -e "$virtnet_networks/default.xml" ]; then
        return 0
    fi
    if [ -e "$virtnet_libvirt_default" ]; then
        echo "virtnet: libvirt has a network named default ($virtnet_libvirt_default),"
        echo "virtnet: so virtnet defines none; 'virtnet import --uri qemu:///system default'"
        echo "virtnet: takes libvirt's over (a running one with its guests)."
        return 0
    fi
    if ! third=$(virtnet_free_subnet); then
        echo "virtnet: every 192.168.N.0/24 has a route; no default network defined" >&2
        return 0
    fi
    uuid=$(cat /proc/sys/kernel/random/uuid)
    mac=52:54:00$(od -An -N3 -tx1 /dev/urandom | tr ' ' ':')
    mkdir -p "$virtnet_networks/autostart" /var/lib/virtnet
    (
        umask 077
        cat >"$virtnet_networks/.default.xml.new" <<XML
<network>
  <name>default</name>
  <uuid>$uuid</uuid>
  <forward mode='nat'/>
  <bridge name='virbr0'/>
  <mac address='$mac'/>
  <ip address='192.168.$third.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.$third.2' end='192.168.$third.254'/>
    </dhcp>
  </ip>
</network>
XML
    )
    mv "$virtnet_networks/.default.xml.new" "$virtnet_networks/default.xml"
    ln -sf ../default.xml "$virtnet_networks/autostart/default.xml"
    echo "$uuid" >"$virtnet_made_default"
    echo "virtnet: defined network default (192.168.$third.0/24 on virbr0, autostarted)"
}

# Removes the `default` network the package defined, if it is still that
# network (its UUID), as libvirt's packages remove theirs at purge.
virtnet_forget_default() {
    if [ -f "$virtnet_made_default" ] && [ -f "$virtnet_networks/default.xml" ] \
        && grep -q "<uuid>$(cat "$virtnet_made_default")</uuid>" "$virtnet_networks/default.xml"; then
        rm -f "$virtnet_networks/autostart/default.xml" "$virtnet_networks/default.xml"
    fi
    rm -f "$virtnet_made_default"
}

# Group libvirt manages networks (the D-Bus policy); made when missing, as
# libvirt's packages make it.
virtnet_add_group() {
    if ! getent group libvirt >/dev/null; then
        groupadd --system libvirt
        mkdir -p /var/lib/virtnet
        echo libvirt >"$virtnet_made_group"
    fi
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
