//! The pipeline steps shared by `run`, `run --once`, `push` and the control API, written once: which targets
//! a push goes to, building them, planning every entry for them with the statuses the daemon plans with, and
//! draining their outboxes side by side.
//!
//! The daemon ([`crate::daemon`]) and the CLI's `push` both call these; neither re-implements them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::availability::{self, AvailabilityStore};
use crate::config::Config;
use crate::push::target::{Target, TargetError};
use crate::push::{DrainOptions, DrainReport, Outbox, PlanReport, PushSettings, Scope, Worker};
use crate::store::{Store, StoreError};
use crate::targets::registry::TargetConfig;

/// The enabled targets to push to: the one named `name`, or all of them. `Err` is a configuration problem,
/// in words (a disabled or unknown target, no target at all).
pub fn select_targets<'a>(config: &'a Config, name: Option<&str>) -> Result<Vec<&'a TargetConfig>, String> {
    let names = || {
        config
            .targets
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => match config.targets.iter().find(|t| t.name == n) {
            Some(t) if !t.enabled => Err(format!(
                "target {n} is disabled (enabled = false in its [[targets]] table); enable it to push to it"
            )),
            Some(t) => Ok(vec![t]),
            None => Err(format!(
                "no target named {n:?} in the configuration (targets: {})",
                if config.targets.is_empty() {
                    "none".to_owned()
                } else {
                    names()
                }
            )),
        },
        None => {
            let enabled: Vec<_> = config.targets.iter().filter(|t| t.enabled).collect();
            if enabled.is_empty() {
                Err(
                    "the configuration has no enabled [[targets]]: declare one (see \"Targets and the outbox\" in \
                     the README and config/default.toml)"
                        .to_owned(),
                )
            } else {
                Ok(enabled)
            }
        }
    }
}

/// One target ready to receive: its name, the target itself and its worker settings.
#[derive(Clone)]
pub struct BuiltTarget {
    /// The target's name (`[[targets]] name`).
    pub name: String,
    /// The target.
    pub target: Arc<dyn Target>,
    /// How its worker paces, retries and buries.
    pub settings: PushSettings,
}

/// Builds every target of `targets`, before anything is planned: a bad one stops the push with nothing
/// queued. `Err` names the target that could not be built and why.
pub fn build_targets(targets: &[&TargetConfig], store: &Store) -> Result<Vec<BuiltTarget>, (String, TargetError)> {
    targets
        .iter()
        .map(|cfg| {
            crate::targets::build(cfg, store)
                .map(|target| BuiltTarget {
                    name: cfg.name.clone(),
                    target,
                    settings: cfg.push_settings(),
                })
                .map_err(|e| (cfg.name.clone(), e))
        })
        .collect()
}

/// Plans every entry for `targets` with the statuses the daemon plans with (the catalogue combined with the
/// last polled availability); with `dry_run`, writes nothing.
pub fn plan(
    config: &Config,
    store: &Store,
    outbox: &Outbox,
    targets: &[&TargetConfig],
    dry_run: bool,
) -> Result<PlanReport, StoreError> {
    let status = availability::status_fn(AvailabilityStore::new(store)?);
    let plan_targets: Vec<_> = targets.iter().map(|t| crate::targets::plan_target(t)).collect();
    outbox.plan(
        &plan_targets,
        &config.entries.options(),
        &status,
        &Scope::All,
        false,
        dry_run,
    )
}

/// Drains the outbox of every target in `targets` side by side, waiting up to `max_wait` for retries, until
/// `stop` (if any) is cancelled. The report of each target by name; a worker that stopped unexpectedly is
/// logged and missing from the map.
pub async fn drain_all(
    outbox: &Outbox,
    targets: Vec<BuiltTarget>,
    max_wait: Duration,
    stop: Option<CancellationToken>,
) -> BTreeMap<String, Result<DrainReport, StoreError>> {
    let mut set = tokio::task::JoinSet::new();
    for t in targets {
        let outbox = outbox.clone();
        let opts = DrainOptions {
            max_wait,
            stop: stop.clone(),
        };
        set.spawn(async move {
            let report = match Worker::new(&outbox, t.target, t.settings) {
                Ok(w) => w.drain(opts).await,
                Err(e) => Err(e),
            };
            (t.name, report)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((name, report)) => {
                out.insert(name, report);
            }
            Err(e) => tracing::error!(error = %e, "a push worker stopped unexpectedly"),
        }
    }
    out
}
