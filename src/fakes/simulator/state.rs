//! The simulated institution's state: the catalogue's facts, availabilities that change as sales go, the rendered catalogue bodies spooled to disk.

#[allow(unused_imports)]
use super::*;

impl Simulator {
    /// Binds `opts.listen` (default 127.0.0.1:0) and serves on the current tokio runtime.
    pub async fn start(opts: SimulatorOptions) -> std::io::Result<Simulator> {
        let base_time = opts.now.unwrap_or_else(Utc::now);
        let generator = Generator::new(GeneratorOptions::new(
            opts.products,
            opts.performances_per_product,
            opts.seed,
            base_time,
        ));
        let (products, perfs) = facts(generator.plans());
        let product_by_id = products.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        let perf_by_id = perfs.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        let spool = tempfile::Builder::new().prefix("secutix-simulator-").tempdir()?;
        let inner = Arc::new(Inner {
            generator,
            in_progress_pending: AtomicBool::new(opts.in_progress_once),
            opts: opts.clone(),
            started: tokio::time::Instant::now(),
            base_time,
            calls: Mutex::new(BTreeMap::new()),
            request_ids: AtomicI64::new(4100),
            rendered: Default::default(),
            spool,
            products,
            perfs,
            product_by_id,
            perf_by_id,
        });
        let listener =
            tokio::net::TcpListener::bind(opts.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route("/tnseb/backend-apis/{service}/{version}/{method}", post(rest))
            .route("/tnseb/external-remoting/{endpoint}", post(soap))
            .route("/tnai/backend-apis/v1/auth", post(token))
            .with_state(inner.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the SecuTix simulator stopped");
            }
        });
        tracing::info!(%addr, products = opts.products, performances = opts.performances_per_product, "SecuTix simulator listening");
        Ok(Simulator {
            addr,
            inner,
            shutdown,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`: the `secutix.base_url` to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Calls received so far, per method (`getCatalogDetailed`, `getEventAvailability`, `v1/auth`…).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.inner.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The catalogue it serves.
    pub fn generator(&self) -> &Generator {
        &self.inner.generator
    }

    /// Makes the next catalogue call answer `in_progress` once more.
    pub fn arm_in_progress(&self) {
        self.inner.in_progress_pending.store(true, Ordering::SeqCst);
    }

    /// Renders a catalogue response ahead of the first call (a large one takes a while); returns its size.
    pub async fn prepare(&self, body: CatalogueBody) -> std::io::Result<u64> {
        let r = self.inner.rendered(body).await?;
        Ok(match &*r {
            Rendered::Memory(b) => b.len() as u64,
            Rendered::File { len, .. } => *len,
        })
    }

    /// The simulator's calendar time now (its start time plus tokio time elapsed).
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    /// What it answers now for a performance (`None` for an unknown id).
    pub fn performance_availability(&self, performance_id: Id) -> Option<PerformanceAvailability> {
        let i = *self.inner.perf_by_id.get(&performance_id)?;
        Some(self.inner.availability(i, self.inner.step(), self.inner.now()))
    }

    /// Stops serving; requests in flight finish first.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

pub(super) fn facts(plans: impl Iterator<Item = ProductPlan>) -> (Vec<ProductFacts>, Vec<PerfFacts>) {
    let mut products = Vec::new();
    let mut perfs = Vec::new();
    for plan in plans {
        let first = perfs.len();
        let index = products.len();
        for p in &plan.performances {
            perfs.push(PerfFacts {
                id: p.id,
                product: index,
                cancelled: p.state.as_ref().is_some_and(State::is_cancelled),
                sale_end: p.sale_end.unwrap_or(plan.sale_end).min(plan.sale_end).min(p.start),
            });
        }
        products.push(ProductFacts {
            id: plan.id,
            state: plan.state.clone(),
            sale_start: plan.sale_start,
            alert_ratio: plan.alert_ratio,
            quota: plan.capacity,
            perfs: first..perfs.len(),
        });
    }
    (products, perfs)
}

// ---------------------------------------------------------------------------------------------------------
// Availability model
// ---------------------------------------------------------------------------------------------------------

impl Inner {
    pub(super) fn period(&self) -> Duration {
        self.opts.availability_change_every.max(Duration::from_millis(1))
    }

    pub(super) fn step(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().duration_since(self.started);
        (elapsed.as_nanos() / self.period().as_nanos()) as u64
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().duration_since(self.started);
        self.base_time + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }

    pub(super) fn step_time(&self, step: u64) -> DateTime<Utc> {
        let d = self.period().saturating_mul(u32::try_from(step).unwrap_or(u32::MAX));
        self.base_time + chrono::Duration::from_std(d).unwrap_or_default()
    }

    /// True when product `p` sells seats at `step` (step 0 is the initial state of every product).
    pub(super) fn moves(&self, p: usize, step: u64) -> bool {
        step == 0
            || (hash3(self.opts.seed, 1 + p as u64, step) % 10_000)
                < (self.opts.changed_share.clamp(0.0, 1.0) * 10_000.0) as u64
    }

    /// The last step at or before `step` at which product `p` moved.
    pub(super) fn last_move(&self, p: usize, step: u64) -> u64 {
        if self.opts.changed_share <= 0.0 {
            return 0;
        }
        let mut s = step;
        while !self.moves(p, s) {
            s -= 1;
        }
        s
    }

    pub(super) fn availability(&self, perf: usize, step: u64, now: DateTime<Utc>) -> PerformanceAvailability {
        let f = &self.perfs[perf];
        let p = &self.products[f.product];
        let moved = self.last_move(f.product, step);
        let h = hash3(self.opts.seed, f.id as u64, 0xA7A1);
        let base = 0.15 + (h % 1000) as f64 / 1000.0 * 0.95;
        let phase = ((h >> 10) % 628) as f64 / 100.0;
        let speed = 0.3 + ((h >> 20) % 100) as f64 / 100.0;
        let sold = (base + 0.35 * (phase + moved as f64 * speed).sin()).clamp(0.0, 1.0);
        let quota = p.quota;
        let quantity = (f64::from(quota) * (1.0 - sold)).round() as u32;
        let level = if f.cancelled {
            "NOT_VISIBLE"
        } else if p.state != State::Running || now < p.sale_start || now >= f.sale_end {
            "OUTSIDE_SALE_PERIOD"
        } else if quantity == 0 {
            "SOLD_OUT"
        } else if f64::from(quantity) * 100.0 <= p.alert_ratio * f64::from(quota) {
            "LIMITED"
        } else {
            "GOOD"
        };
        PerformanceAvailability {
            performance_id: f.id,
            level,
            quantity,
            quota,
        }
    }

    pub(super) fn perf_json(&self, a: &PerformanceAvailability) -> Value {
        json!({"performanceId": a.performance_id, "level": a.level, "quantity": a.quantity, "quota": a.quota})
    }

    pub(super) async fn rendered(&self, body: CatalogueBody) -> std::io::Result<Arc<Rendered>> {
        let cell = &self.rendered[body.slot()];
        cell.get_or_try_init(|| async {
            let generator = self.generator.clone();
            let limit = self.opts.memory_limit;
            let dir = self.spool.path().to_owned();
            tokio::task::spawn_blocking(move || render(&generator, body, limit, &dir))
                .await
                .map_err(std::io::Error::other)?
                .map(Arc::new)
        })
        .await
        .cloned()
    }

    pub(super) fn count(&self, method: &str) {
        if let Ok(mut c) = self.calls.lock() {
            *c.entry(method.to_owned()).or_default() += 1;
        }
    }

    pub(super) fn request_id(&self) -> i64 {
        self.request_ids.fetch_add(1, Ordering::Relaxed)
    }
}

impl std::io::Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.len += buf.len() as u64;
        if self.file.is_none() && self.memory.len() + buf.len() > self.limit {
            let (file, path) = tempfile::Builder::new()
                .prefix("catalogue-")
                .tempfile_in(&self.dir)?
                .into_parts();
            let mut w = std::io::BufWriter::with_capacity(256 * 1024, file);
            w.write_all(&self.memory)?;
            self.memory = Vec::new();
            self.file = Some((w, path));
        }
        match &mut self.file {
            Some((w, _)) => w.write_all(buf)?,
            None => self.memory.extend_from_slice(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some((w, _)) => w.flush(),
            None => Ok(()),
        }
    }
}

pub(super) fn render(
    generator: &Generator,
    body: CatalogueBody,
    limit: usize,
    dir: &std::path::Path,
) -> std::io::Result<Rendered> {
    use std::io::Write;
    let mut spool = Spool {
        memory: Vec::new(),
        file: None,
        limit,
        dir: dir.to_owned(),
        len: 0,
    };
    match body {
        CatalogueBody::RestDetailed => generator.write_rest_json(&mut spool, None)?,
        CatalogueBody::SoapDetailed => generator.write_soap_xml(&mut spool, None)?,
        CatalogueBody::RestGetCatalog => generator.write_get_catalog_rest(&mut spool, None)?,
        CatalogueBody::SoapGetCatalog => generator.write_get_catalog_soap(&mut spool, None)?,
    }
    spool.flush()?;
    Ok(match spool.file {
        None => Rendered::Memory(Bytes::from(spool.memory)),
        Some((w, path)) => {
            drop(w.into_inner().map_err(|e| e.into_error())?);
            // Kept until the simulator goes: the TempDir removes it.
            let path = path.keep().map_err(|e| e.error)?;
            Rendered::File { path, len: spool.len }
        }
    })
}
