//! `virtnet doctor`: the findings about one network or every active one,
//! each with its fix (decided in `plan::diagnosis` from what the driver
//! sees).

use crate::apply::RunningNetwork;
use crate::definition::NetworkDef;
use crate::plan::diagnosis::{self, Finding};

use super::Service;
use super::error::{Result, ServiceError};
use super::registry::lock_state;

/// What a diagnosis looked at, and what it found.
#[derive(Debug, Default)]
pub struct Diagnosis {
    /// The networks examined, by name.
    pub examined: Vec<String>,
    pub findings: Vec<Finding>,
}

impl Service {
    /// The findings about network `network` (a name or UUID), or about
    /// every active network when it is empty. A named network that is not
    /// active is one finding: it has to be started.
    pub async fn diagnose(&self, network: &str) -> Result<Diagnosis> {
        let entries = if network.is_empty() {
            self.entries()
        } else {
            let summary = self
                .lookup_by_name(network)
                .or_else(|_| self.lookup_by_uuid(network))
                .map_err(|_| ServiceError::NoSuchName(network.to_owned()))?;
            vec![self.entry(&summary.uuid)?]
        };
        let mut diagnosis = Diagnosis::default();
        let mut running: Vec<(NetworkDef, RunningNetwork)> = Vec::new();
        for entry in entries {
            // A copy, taken under the network's lock: the look at the host
            // that follows holds up no operation on the network.
            let state = lock_state(&entry).await;
            match &state.live {
                Some(live) => {
                    diagnosis.examined.push(entry.name.clone());
                    if let Some(realized) = &live.running {
                        running.push((live.def.clone(), realized.clone()));
                    }
                }
                None if !network.is_empty() && !state.gone => {
                    diagnosis.examined.push(entry.name.clone());
                    diagnosis.findings.push(diagnosis::inactive(&entry.name));
                }
                None => {}
            }
        }
        if !running.is_empty() {
            diagnosis
                .findings
                .extend(self.driver.diagnose(&running).await?);
        }
        Ok(diagnosis)
    }
}
