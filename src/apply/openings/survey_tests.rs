use super::*;

/// `nft -j list ruleset` (nft 1.0.6) of a host with Docker's chains
/// (iptables-nft, FORWARD policy DROP, one accept of virtnet's in
/// DOCKER-USER), an INPUT ending in REJECT, ip6tables' FORWARD policy DROP
/// and a native table with a dropping forward chain (holding an accept of
/// virtnet's), an input chain ending in reject, an output chain and a
/// forward chain that drops only port 80.
const RULESET: &str = include_str!("../../../tests/fixtures/host-firewalls/ruleset.json");
/// `iptables -S` of the same host.
const IPTABLES: &str = include_str!("../../../tests/fixtures/host-firewalls/iptables-S.txt");

fn chain<'a>(survey: &'a Survey, table: &str, name: &str) -> Option<&'a DroppingChain> {
    survey
        .dropping
        .iter()
        .find(|chain| chain.table == table && chain.chain == name)
}

#[test]
fn dropping_chains_are_found_with_their_owner() {
    let survey = Survey::from_ruleset(RULESET).expect("nft's listing");
    let names: Vec<String> = survey
        .dropping
        .iter()
        .map(DroppingChain::describe)
        .collect();
    assert_eq!(
        names,
        [
            "table ip filter, chain FORWARD (policy drop)",
            "table ip filter, chain INPUT (its last rule (handle 10) is 'REJECT')",
            "table ip6 filter, chain FORWARD (policy drop)",
            "table inet hostfw, chain host_forward (policy drop)",
            "table inet hostfw, chain host_input (its last rule (handle 8) is 'reject')",
        ],
        "not the output chain, nor a chain that drops one port"
    );
    let docker = chain(&survey, "filter", "FORWARD").expect("FORWARD");
    assert!(docker.iptables && docker.docker_user);
    assert_eq!(docker.hook, Hook::Forward);
    let native = chain(&survey, "hostfw", "host_input").expect("host_input");
    assert!(!native.iptables && !native.docker_user);
    assert_eq!(native.hook, Hook::Input);
}

#[test]
fn accepts_of_virtnets_are_found_in_both_listings() {
    let mut survey = Survey::from_ruleset(RULESET).expect("nft's listing");
    assert_eq!(
        survey.ours,
        [OurRule {
            network: "n".into(),
            purpose: "forward to bridge".into(),
            place: Place::Nft {
                family: Family::Inet,
                table: "hostfw".into(),
                chain: "host_forward".into(),
            },
            removal: Removal::Handle(5),
        }]
    );
    survey.add_iptables_listing(Family::Ip, IPTABLES);
    let docker = &survey.ours[1];
    assert_eq!(docker.network, "n");
    assert_eq!(docker.purpose, "forward from bridge");
    assert_eq!(
        docker.place.describe(),
        "table ip filter, chain DOCKER-USER"
    );
    assert_eq!(
        docker.removal,
        Removal::Specification(
            [
                "DOCKER-USER",
                "-i",
                "virbr9",
                "-m",
                "comment",
                "--comment",
                "virtnet network n: forward from bridge",
                "-j",
                "ACCEPT"
            ]
            .map(String::from)
            .to_vec()
        )
    );
}

#[test]
fn virtnets_own_table_is_not_someone_elses() {
    let listing = r#"{"nftables": [
        {"chain": {"family": "inet", "table": "virtnet", "name": "forward", "handle": 1,
                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}]}"#;
    assert_eq!(
        Survey::from_ruleset(listing).expect("listing"),
        Survey::default()
    );
}

#[test]
fn iptables_words_keep_their_quotes_and_escapes() {
    assert_eq!(
        split_words(r#"-A X -m comment --comment "a \"b\" c" -j ACCEPT"#),
        [
            "-A",
            "X",
            "-m",
            "comment",
            "--comment",
            r#"a "b" c"#,
            "-j",
            "ACCEPT"
        ]
    );
    assert_eq!(split_words(r#"--comment """#), ["--comment", ""]);
}

#[test]
fn other_tables_leave_virtnets_firewallds_and_non_ip_families_out() {
    let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "virtnet", "handle": 1}},
        {"table": {"family": "ip", "name": "filter", "handle": 2}},
        {"table": {"family": "bridge", "name": "filter", "handle": 3}},
        {"table": {"family": "inet", "name": "host", "handle": 4}},
        {"table": {"family": "inet", "name": "firewalld", "handle": 5}}]}"#;
    assert_eq!(
        other_tables(listing).expect("listing"),
        [
            (Family::Ip, "filter".to_owned()),
            (Family::Inet, "host".to_owned())
        ]
    );
}

#[test]
fn firewallds_iptables_chains_get_no_accepts() {
    let listing = r#"{"nftables": [
        {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 1,
                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "ip", "table": "filter", "name": "FORWARD_IN_ZONES", "handle": 2}}]}"#;
    assert_eq!(
        Survey::from_ruleset(listing).expect("listing"),
        Survey::default()
    );
}
