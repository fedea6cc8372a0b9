//! The operator routes: readiness, status, entries, resync, the push plan, dead letters.

#[allow(unused_imports)]
use super::*;

pub(super) async fn readyz(State(app): State<Arc<App>>) -> Response {
    let max_age = app.config().daemon.catalogue_max_age;
    let now = app.clock.now();
    let last = app.catalogue.state().last_success_at;
    let fresh = last.is_some_and(|t| (now - t).to_std().unwrap_or_default() <= max_age);
    let store_ok = app.store.generation().is_ok();
    let reason = match (store_ok, last, fresh) {
        (false, _, _) => Some("the store does not answer".to_owned()),
        (_, None, _) => Some("no good catalogue import yet".to_owned()),
        (_, Some(t), false) => Some(format!(
            "the last good import ({t}) is older than daemon.catalogue_max_age ({})",
            crate::text::human(max_age)
        )),
        _ => None,
    };
    let body = ReadyDocument {
        ready: reason.is_none(),
        reason,
        store: if store_ok { "open" } else { "failing" }.to_owned(),
        last_good_import: last,
        catalogue_max_age_secs: max_age.as_secs(),
    };
    let code = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

pub(super) async fn status(State(app): State<Arc<App>>) -> Json<crate::daemon::status::StatusDocument> {
    Json(app.status())
}

pub(super) async fn entries(
    State(app): State<Arc<App>>,
    Query(q): Query<EntriesQuery>,
) -> Result<Json<crate::daemon::documents::EntriesDocument>, ApiError> {
    Ok(Json(entries_document(&app.config(), &app.outbox, &q)?))
}

pub(super) async fn entry(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<crate::daemon::documents::EntryDocument>, ApiError> {
    match entry_document(&app.config(), &app.outbox, &id)? {
        Some(doc) => Ok(Json(doc)),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no entry {}; see GET /entries", external_id_of(&id)),
        )),
    }
}

pub(super) async fn resync(State(app): State<Arc<App>>, Json(body): Json<ResyncRequest>) -> Result<Response, ApiError> {
    if app.shutdown.is_cancelled() {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down; try again once it is back".into(),
        ));
    }
    let scope = body.scope.trim();
    let availability_enabled = app.config().availability.enabled;
    let answer = |job: &str, r: Requested, then: Option<&str>| {
        let code = match r {
            Requested::Accepted { .. } => StatusCode::ACCEPTED,
            Requested::AlreadyRunning { .. } => StatusCode::CONFLICT,
        };
        let (status, message) = match r {
            Requested::Accepted { run } => ("accepted", format!("{job} run {run} requested")),
            Requested::AlreadyRunning { run } => (
                "already_running",
                format!("{job} is already running (run {run}); this request is merged into it"),
            ),
        };
        let body = ResyncAnswer {
            status: status.to_owned(),
            job: job.to_owned(),
            run: r.run(),
            scope: scope.to_owned(),
            then: then.map(str::to_owned),
            message,
        };
        (code, Json(body)).into_response()
    };
    let manual = |force: bool, product: Option<i64>, then_availability: bool| Trigger::Manual {
        force,
        products: product.into_iter().collect(),
        then_availability,
    };
    let parsed: ResyncScope = scope.parse().map_err(|m| ApiError(StatusCode::BAD_REQUEST, m))?;
    Ok(match parsed {
        ResyncScope::Catalogue => answer(
            "catalogue",
            app.catalogue.request(manual(body.force, None, false)),
            None,
        ),
        ResyncScope::Availability if !availability_enabled => {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "availability polling is disabled (availability.enabled = false)".into(),
            ));
        }
        ResyncScope::Availability => answer(
            "availability",
            app.availability.request(manual(false, None, false)),
            None,
        ),
        ResyncScope::All => {
            // Import, then (chained by the catalogue job) a poll; each plans and wakes the push workers.
            let then = availability_enabled.then_some("availability");
            answer(
                "catalogue",
                app.catalogue.request(manual(body.force, None, availability_enabled)),
                then,
            )
        }
        ResyncScope::Push => answer("refresh", app.refresh.request(manual(false, None, false)), None),
        ResyncScope::FullPush => answer("refresh", app.refresh.request(manual(true, None, false)), None),
        ResyncScope::Product(id) => {
            let known = app
                .store
                .catalog()?
                .map(|c| c.product(id))
                .transpose()?
                .flatten()
                .is_some();
            if !known {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("product {id} is not in the catalogue in force; resync --catalogue first if it is new"),
                ));
            }
            if availability_enabled {
                // Fresh availability for this product, then its entry re-sent to every target.
                answer(
                    "availability",
                    app.availability.request(manual(true, Some(id), false)),
                    None,
                )
            } else {
                answer("refresh", app.refresh.request(manual(true, Some(id), false)), None)
            }
        }
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct PlanQuery {
    target: Option<String>,
}

/// A dry run of `push` in the running daemon: its configuration, its entries, its statuses.
pub(super) async fn push_plan(
    State(app): State<Arc<App>>,
    Query(q): Query<PlanQuery>,
) -> Result<Json<crate::daemon::documents::PlanDocument>, ApiError> {
    let cfg = app.config();
    let targets: Vec<&crate::targets::registry::TargetConfig> = match q.target.as_deref() {
        Some(name) => match cfg.targets.iter().find(|t| t.name == name) {
            Some(t) if !t.enabled => {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("target {name} is disabled (enabled = false in its [[targets]] table)"),
                ));
            }
            Some(t) => vec![t],
            None => {
                let names: Vec<&str> = cfg.targets.iter().map(|t| t.name.as_str()).collect();
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no target named {name:?} in the daemon's configuration (targets: {})",
                        names.join(", ")
                    ),
                ));
            }
        },
        None => cfg.targets.iter().filter(|t| t.enabled).collect(),
    };
    let Some(view) = app.store.catalog()? else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon has no catalogue yet: its first import has not succeeded (see GET /status)".into(),
        ));
    };
    let plan_targets: Vec<_> = targets.iter().map(|t| crate::targets::plan_target(t)).collect();
    let options = cfg.entries.options();
    let plan = app.dry_run(&plan_targets, &options)?;
    let mut doc = plan_document(&targets, &plan, &app.outbox, &view, &options);
    doc.daemon = Some(crate::daemon::documents::DaemonInfo {
        pid: std::process::id(),
        started_at: app.started_at,
    });
    Ok(Json(doc))
}

#[derive(Debug, Deserialize)]
pub(super) struct DlqQuery {
    target: Option<String>,
}

/// The targets dead letters may belong to: the configured ones, then those the store remembers (a target
/// removed from the configuration keeps its dead letters), as `secutix-sync dlq` does on the store.
pub(super) fn target_names(app: &App, only: Option<&str>) -> Result<Vec<String>, ApiError> {
    let mut names: Vec<String> = app.config().targets.iter().map(|t| t.name.clone()).collect();
    for name in app.outbox.targets_in_store() {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    match only {
        Some(t) if names.iter().any(|n| n == t) => Ok(vec![t.to_owned()]),
        Some(t) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no target {t:?}; targets: {}", names.join(", ")),
        )),
        None => Ok(names),
    }
}

pub(super) async fn dlq_list(
    State(app): State<Arc<App>>,
    Query(q): Query<DlqQuery>,
) -> Result<Json<DeadLettersDocument>, ApiError> {
    let names = target_names(&app, q.target.as_deref())?;
    Ok(Json(DeadLettersDocument {
        dead_letters: app.outbox.dead_letters(&names)?,
    }))
}

pub(super) fn push_error(e: crate::push::PushError) -> ApiError {
    match e {
        crate::push::PushError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
        other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

pub(super) async fn dlq_replay_all(
    State(app): State<Arc<App>>,
    Path(target): Path<String>,
) -> Result<Json<ReplayAnswer>, ApiError> {
    target_names(&app, Some(&target))?;
    let (replayed, superseded) = app.outbox.replay(&target, None).map_err(push_error)?;
    app.wake_workers();
    Ok(Json(ReplayAnswer { replayed, superseded }))
}

pub(super) async fn dlq_replay(
    State(app): State<Arc<App>>,
    Path((target, id)): Path<(String, u64)>,
) -> Result<Json<ReplayAnswer>, ApiError> {
    target_names(&app, Some(&target))?;
    let (replayed, superseded) = app.outbox.replay(&target, Some(id)).map_err(push_error)?;
    app.wake_workers();
    Ok(Json(ReplayAnswer { replayed, superseded }))
}

pub(super) async fn dlq_drop(
    State(app): State<Arc<App>>,
    Path((target, id)): Path<(String, u64)>,
) -> Result<Json<DropAnswer>, ApiError> {
    target_names(&app, Some(&target))?;
    let dropped = app.outbox.drop_dead_letter(&target, id).map_err(push_error)?;
    Ok(Json(DropAnswer { dropped }))
}
