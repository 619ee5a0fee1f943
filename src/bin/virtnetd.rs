//! `virtnetd`: the virtnet daemon. Serves the network service over D-Bus
//! with libvirt-dbus's interfaces, and with `--rpc-socket-dir` over
//! libvirt's RPC protocol on virtnetworkd's sockets.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use virtnet::apply::Environment;
use virtnet::apply::firewalld::FirewalldEvents;
use virtnet::cli::args::virtnetd::{Cli, DriverKind};
use virtnet::dbus;
use virtnet::definition::error_chain;
use virtnet::service::kernel::Kernel;
use virtnet::service::{Service, TestDriver};
use virtnet::state::store::Store;

async fn run(cli: Cli) -> Result<(), String> {
    let (service, connect_path) = match cli.driver {
        DriverKind::Test => (Service::new(TestDriver), dbus::TEST_CONNECT_PATH),
        DriverKind::Kernel => {
            let env = Environment {
                state_dir: cli.state_dir.clone(),
                run_dir: cli.run_dir.clone(),
                ..Environment::system()
            };
            let store = Store::new(&cli.config_dir, &cli.run_dir);
            (
                Service::new(Kernel::new(env, store, cli.foreign_firewalls)),
                dbus::KERNEL_CONNECT_PATH,
            )
        }
    };
    #[cfg(feature = "libvirt")]
    // An empty URI (a unit's drop-in clearing it) publishes nothing.
    let (service, libvirtd) = match cli.libvirt_uri.as_deref().filter(|uri| !uri.is_empty()) {
        Some(uri) => {
            let record = cli.run_dir.join("libvirt-published");
            let libvirtd = virtnet::libvirtd::Libvirtd::spawn(uri.to_owned(), record)
                .map_err(|error| format!("cannot start the libvirtd link: {error}"))?;
            (service.with_neighbour(libvirtd.clone()), Some(libvirtd))
        }
        None => (service, None),
    };
    let service = Arc::new(service);
    // From now on SIGHUP reloads (its default would end the daemon).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|error| format!("cannot handle SIGHUP: {error}"))?;
    service.load().await.map_err(|error| error_chain(&error))?;
    #[cfg(feature = "libvirt")]
    if let Some(libvirtd) = libvirtd {
        // Subscribed now, before autostart starts anything.
        let events = service.subscribe();
        tokio::spawn(virtnet::libvirtd::follow(service.clone(), libvirtd, events));
    }
    let connection = cli
        .bus()
        .builder()
        .build()
        .await
        .map_err(|error| format!("cannot connect to the bus: {error}"))?;
    dbus::server::serve(service.clone(), &connection, connect_path)
        .await
        .map_err(|error| format!("cannot serve {connect_path}: {error}"))?;
    // Before the bus name: a client that sees virtnetd on the bus finds
    // its sockets too.
    if let Some(dir) = &cli.rpc_socket_dir {
        virtnet::rpc::serve(service.clone(), dir, cli.rpc_max_clients)
            .await
            .map_err(|error| error_chain(&error))?;
    }
    connection
        .request_name(cli.bus_name.as_str())
        .await
        .map_err(|error| format!("cannot own the name {}: {error}", cli.bus_name))?;
    tracing::info!(name = cli.bus_name, path = connect_path, "serving");
    if matches!(cli.driver, DriverKind::Kernel) {
        tokio::spawn(guard_firewall(service.clone()));
        tokio::spawn(follow_firewalld(service.clone()));
        tokio::spawn(service.clone().supervise());
        tokio::spawn(follow_leases(service.clone()));
    }
    service.autostart().await;
    tokio::spawn(reload_on_hangup(service.clone(), hangups));
    wait_for_termination().await;
    service.settle().await;
    // Networks stay up, as with libvirtd: the next start takes them over.
    tracing::info!("stopping; networks stay as they are");
    Ok(())
}

/// Puts virtnet's table right whenever someone else changes it (`nft
/// flush ruleset`, a rule removed or added by hand, a firewall manager
/// reloading).
async fn guard_firewall(service: Arc<Service>) {
    let mut watch = match service.watch_firewall() {
        Some(Ok(watch)) => watch,
        Some(Err(error)) => {
            tracing::error!(
                "cannot follow nftables changes, changes others make to virtnet's table stay: {error}"
            );
            return;
        }
        None => return,
    };
    loop {
        if let Err(error) = watch.change().await {
            tracing::error!("cannot read nftables changes: {error}");
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        }
        // A flush comes as a burst of notifications: let it end first.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        watch.drain();
        if let Err(error) = service.reload_firewall().await {
            tracing::error!(
                "cannot put virtnet's nftables table right: {}",
                error_chain(&error)
            );
        }
    }
}

/// Puts the bridges back into their firewalld zones whenever firewalld
/// forgets them: it reloaded, or it started (after virtnetd, or again).
async fn follow_firewalld(service: Arc<Service>) {
    let mut events = match FirewalldEvents::open().await {
        Ok(events) => events,
        Err(error) => {
            tracing::info!("no system bus, firewalld is not followed: {error}");
            return;
        }
    };
    while let Some(event) = events.next().await {
        tracing::info!("firewalld {event:?}: putting the bridges back into their zones");
        service.restore_firewalld_zones().await;
    }
    tracing::warn!("the system bus connection ended: firewalld is no longer followed");
}

/// Reloads as libvirtd does on each SIGHUP (see `Service::reload`).
async fn reload_on_hangup(service: Arc<Service>, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading definitions, firewall and autostart");
        service.reload().await;
    }
}

/// Keeps the lease status files in step with dnsmasq's lease files.
async fn follow_leases(service: Arc<Service>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        ticks.tick().await;
        service.sync_lease_status().await;
    }
}

async fn wait_for_termination() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

// One thread: the work waits on the kernel and on child processes, not on
// the CPU, and one thread keeps the allocator to one arena.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = std::env::var("VIRTNET_LOG")
        .ok()
        .and_then(|level| level.parse().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}
