# shellcheck shell=sh
# At install: the `default` network and the group `libvirt`.

virtnet_networks=/etc/virtnet/networks
virtnet_libvirt_default=/etc/libvirt/qemu/networks/default.xml
# What the package made, so that purge (purge.sh) removes that and nothing
# else: the UUID of the `default` network it defined, the group it added.
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

# Group libvirt manages networks (the D-Bus policy); made when missing, as
# libvirt's packages make it.
virtnet_add_group() {
    if ! getent group libvirt >/dev/null; then
        groupadd --system libvirt
        mkdir -p /var/lib/virtnet
        echo libvirt >"$virtnet_made_group"
    fi
}
