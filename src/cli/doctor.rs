//! `virtnet doctor [NETWORK] [--json]`: virtnetd's findings, one line each
//! with its fix, and a summary; the exit status fails when anything is
//! wrong.

use super::client::Client;
use super::failure::{Context, Failure};
use super::output::Output;
use crate::dbus::client::FindingTuple;

pub(super) async fn doctor(
    client: &Client,
    network: Option<String>,
    json: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    let (examined, findings) = client
        .virtnet()
        .await?
        .diagnose(network.as_deref().unwrap_or_default())
        .await
        .context(|| "Failed to examine the networks".into())?;
    let output = if json {
        as_json(&examined, &findings)
    } else {
        as_lines(&examined, &findings)
    };
    out.data(&output);
    if findings.is_empty() {
        Ok(())
    } else {
        // Said in full on standard output: only the exit status fails.
        Err(Failure::given_up())
    }
}

fn as_lines(examined: &[String], findings: &[FindingTuple]) -> String {
    let mut out = String::new();
    for (network, problem, fix) in findings {
        let subject = if network.is_empty() { "host" } else { network };
        out.push_str(&format!("{subject}: {problem}; {fix}\n"));
    }
    let networks = match examined.len() {
        0 => "no active network".to_owned(),
        1 => format!("network {}", examined[0]),
        count => format!("{count} networks ({})", examined.join(", ")),
    };
    let summary = match findings.len() {
        0 => format!("no problem found in {networks}"),
        1 => format!("1 problem found in {networks}"),
        count => format!("{count} problems found in {networks}"),
    };
    out.push_str(&summary);
    out.push('\n');
    out
}

fn as_json(examined: &[String], findings: &[FindingTuple]) -> String {
    let findings: Vec<serde_json::Value> = findings
        .iter()
        .map(|(network, problem, fix)| {
            serde_json::json!({
                "network": (!network.is_empty()).then_some(network),
                "problem": problem,
                "fix": fix,
            })
        })
        .collect();
    let report = serde_json::json!({ "networks": examined, "findings": findings });
    format!("{report:#}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(network: &str) -> FindingTuple {
        (network.into(), "it is broken".into(), "mend it".into())
    }

    #[test]
    fn one_line_per_finding_then_a_summary() {
        let examined = ["keennet".to_owned(), "default".to_owned()];
        assert_eq!(
            as_lines(&examined, &[finding("keennet"), finding("")]),
            "keennet: it is broken; mend it\nhost: it is broken; mend it\n2 problems found in 2 networks (keennet, default)\n"
        );
        assert_eq!(
            as_lines(&examined[..1], &[]),
            "no problem found in network keennet\n"
        );
        assert_eq!(
            as_lines(&[], &[]),
            "no problem found in no active network\n"
        );
    }

    #[test]
    fn json_names_no_network_for_what_all_share() {
        let report: serde_json::Value =
            serde_json::from_str(&as_json(&["keennet".into()], &[finding("")])).unwrap();
        assert_eq!(report["networks"][0], "keennet");
        assert_eq!(report["findings"][0]["network"], serde_json::Value::Null);
        assert_eq!(report["findings"][0]["fix"], "mend it");
    }
}
