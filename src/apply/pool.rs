//! The device pool of a network without a bridge of its own, with the
//! connection counts a port allocator needs.

use crate::definition::ForwardMode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    pub device: String,
    pub connections: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfacePool {
    pub mode: ForwardMode,
    pub members: Vec<PoolMember>,
}

impl InterfacePool {
    pub fn new(mode: ForwardMode, devices: impl IntoIterator<Item = String>) -> Self {
        Self {
            mode,
            members: devices
                .into_iter()
                .map(|device| PoolMember {
                    device,
                    connections: 0,
                })
                .collect(),
        }
    }

    /// Picks a device for a new guest port: passthrough and hostdev need a
    /// device of their own; the macvtap modes share, least used first.
    pub fn acquire(&mut self) -> Option<&str> {
        let exclusive = matches!(self.mode, ForwardMode::Passthrough | ForwardMode::Hostdev);
        let member = self
            .members
            .iter_mut()
            .filter(|member| !exclusive || member.connections == 0)
            .min_by_key(|member| member.connections)?;
        member.connections += 1;
        Some(&member.device)
    }

    /// Returns a port's device; false when it is not in use.
    pub fn release(&mut self, device: &str) -> bool {
        match self
            .members
            .iter_mut()
            .find(|member| member.device == device && member.connections > 0)
        {
            Some(member) => {
                member.connections -= 1;
                true
            }
            None => false,
        }
    }

    /// Carries the connection counts of `old` over to the devices both
    /// pools have (the pool was rebuilt by a live update).
    pub fn keep_connections(&mut self, old: &Self) {
        for member in &mut self.members {
            if let Some(previous) = old.members.iter().find(|m| m.device == member.device) {
                member.connections = previous.connections;
            }
        }
    }

    pub fn connections(&self) -> u32 {
        self.members.iter().map(|member| member.connections).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn passthrough_gives_each_device_once() {
        let mut pool = InterfacePool::new(ForwardMode::Passthrough, devices(&["a", "b"]));
        assert_eq!(pool.acquire(), Some("a"));
        assert_eq!(pool.acquire(), Some("b"));
        assert_eq!(pool.acquire(), None);
        assert!(pool.release("a"));
        assert!(!pool.release("a"));
        assert_eq!(pool.acquire(), Some("a"));
        assert_eq!(pool.connections(), 2);
    }

    #[test]
    fn macvtap_modes_share_least_used_first() {
        let mut pool = InterfacePool::new(ForwardMode::Vepa, devices(&["a", "b"]));
        let picks: Vec<String> = (0..4).map(|_| pool.acquire().unwrap().to_owned()).collect();
        assert_eq!(picks, ["a", "b", "a", "b"]);
        assert_eq!(pool.connections(), 4);
        let mut rebuilt = InterfacePool::new(ForwardMode::Vepa, devices(&["b", "c"]));
        rebuilt.keep_connections(&pool);
        assert_eq!(rebuilt.connections(), 2, "b keeps its two, c starts at 0");
    }
}
