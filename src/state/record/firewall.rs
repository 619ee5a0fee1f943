//! A network's rules as its status record keeps them: what a later daemon
//! needs to remove exactly the rules this one installed.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::plan::firewall::{Action, Condition, FirewallPlan, OutboundLimit, Rule, Subnet};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallRecord {
    pub bridge: String,
    pub to_bridge: Vec<RuleRecord>,
    pub from_bridge: Vec<RuleRecord>,
    pub nat: Vec<RuleRecord>,
    pub dns_addresses: Vec<IpAddr>,
    #[serde(default)]
    pub outbound_limit: Option<LimitRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRecord {
    pub conditions: Vec<ConditionRecord>,
    pub action: ActionRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionRecord {
    SourceIn(SubnetRecord),
    DestinationIn(SubnetRecord),
    InputInterface(String),
    OutputInterface(String),
    TcpOrUdp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionRecord {
    Accept,
    Reject,
    Return,
    Masquerade {
        ports: Option<(u16, u16)>,
    },
    Snat {
        addresses: (Ipv4Addr, Ipv4Addr),
        ports: Option<(u16, u16)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetRecord {
    pub network: IpAddr,
    pub prefix: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitRecord {
    pub kbytes_per_second: u64,
    pub burst_kbytes: u64,
}

impl From<&FirewallPlan> for FirewallRecord {
    fn from(plan: &FirewallPlan) -> Self {
        let rules = |rules: &[Rule]| rules.iter().map(RuleRecord::from).collect();
        Self {
            bridge: plan.bridge.clone(),
            to_bridge: rules(&plan.to_bridge),
            from_bridge: rules(&plan.from_bridge),
            nat: rules(&plan.nat),
            dns_addresses: plan.dns_addresses.clone(),
            outbound_limit: plan.outbound_limit.map(|limit| LimitRecord {
                kbytes_per_second: limit.kbytes_per_second,
                burst_kbytes: limit.burst_kbytes,
            }),
        }
    }
}

impl From<FirewallRecord> for FirewallPlan {
    fn from(record: FirewallRecord) -> Self {
        let rules = |rules: Vec<RuleRecord>| rules.into_iter().map(Rule::from).collect();
        Self {
            bridge: record.bridge,
            to_bridge: rules(record.to_bridge),
            from_bridge: rules(record.from_bridge),
            nat: rules(record.nat),
            dns_addresses: record.dns_addresses,
            outbound_limit: record.outbound_limit.map(|limit| OutboundLimit {
                kbytes_per_second: limit.kbytes_per_second,
                burst_kbytes: limit.burst_kbytes,
            }),
        }
    }
}

impl From<&Rule> for RuleRecord {
    fn from(rule: &Rule) -> Self {
        Self {
            conditions: rule.conditions.iter().map(ConditionRecord::from).collect(),
            action: ActionRecord::from(&rule.action),
        }
    }
}

impl From<RuleRecord> for Rule {
    fn from(record: RuleRecord) -> Self {
        Self {
            conditions: record.conditions.into_iter().map(Condition::from).collect(),
            action: Action::from(record.action),
        }
    }
}

impl From<Subnet> for SubnetRecord {
    fn from(subnet: Subnet) -> Self {
        Self {
            network: subnet.network,
            prefix: subnet.prefix,
        }
    }
}

impl From<SubnetRecord> for Subnet {
    fn from(record: SubnetRecord) -> Self {
        Self {
            network: record.network,
            prefix: record.prefix,
        }
    }
}

impl From<&Condition> for ConditionRecord {
    fn from(condition: &Condition) -> Self {
        match condition {
            Condition::SourceIn(subnet) => Self::SourceIn((*subnet).into()),
            Condition::DestinationIn(subnet) => Self::DestinationIn((*subnet).into()),
            Condition::InputInterface(name) => Self::InputInterface(name.clone()),
            Condition::OutputInterface(name) => Self::OutputInterface(name.clone()),
            Condition::TcpOrUdp => Self::TcpOrUdp,
        }
    }
}

impl From<ConditionRecord> for Condition {
    fn from(record: ConditionRecord) -> Self {
        match record {
            ConditionRecord::SourceIn(subnet) => Self::SourceIn(subnet.into()),
            ConditionRecord::DestinationIn(subnet) => Self::DestinationIn(subnet.into()),
            ConditionRecord::InputInterface(name) => Self::InputInterface(name),
            ConditionRecord::OutputInterface(name) => Self::OutputInterface(name),
            ConditionRecord::TcpOrUdp => Self::TcpOrUdp,
        }
    }
}

impl From<&Action> for ActionRecord {
    fn from(action: &Action) -> Self {
        match action {
            Action::Accept => Self::Accept,
            Action::Reject => Self::Reject,
            Action::Return => Self::Return,
            Action::Masquerade { ports } => Self::Masquerade { ports: *ports },
            Action::Snat { addresses, ports } => Self::Snat {
                addresses: *addresses,
                ports: *ports,
            },
        }
    }
}

impl From<ActionRecord> for Action {
    fn from(record: ActionRecord) -> Self {
        match record {
            ActionRecord::Accept => Self::Accept,
            ActionRecord::Reject => Self::Reject,
            ActionRecord::Return => Self::Return,
            ActionRecord::Masquerade { ports } => Self::Masquerade { ports },
            ActionRecord::Snat { addresses, ports } => Self::Snat { addresses, ports },
        }
    }
}
