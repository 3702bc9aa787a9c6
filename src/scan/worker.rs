//! Claims on scans, and the worker that adopts unfinished scans nobody drives:
//! after a restart, or when the instance that started a scan has died.
//!
//! A claim is a lease in the store, renewed while the job runs. Only the holder
//! of a scan's lease drives it, so two instances never poll the same analysis.

use tracing::Instrument;
use uuid::Uuid;

use super::job::Work;
use super::record::{Mode, Scan, ScanState};
use super::service::{Scanner, lease_key, lock};

impl Scanner {
    /// Starts the background worker of this instance. Its first pass runs at
    /// once, so scans left unfinished by a restart resume straight away.
    pub fn start_worker(&self) {
        let scanner = self.clone();
        let worker = async move {
            loop {
                scanner.adopt_unfinished().await;
                tokio::time::sleep(scanner.timing.worker_interval).await;
            }
        };
        tokio::spawn(worker.instrument(tracing::info_span!("worker")));
    }

    /// Claims and drives every unfinished scan no live instance holds.
    async fn adopt_unfinished(&self) {
        let ids = match self.store.unfinished().await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "could not list unfinished scans");
                return;
            }
        };
        for id in ids {
            // A scan this instance drives already, or is starting right now.
            if !self.claim_locally(id) {
                continue;
            }
            match self
                .store
                .acquire_lease(&lease_key(id), &self.instance, self.timing.lease_ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    lock(&self.running).remove(&id);
                    continue;
                }
                Err(error) => {
                    lock(&self.running).remove(&id);
                    tracing::warn!(%error, "could not claim an unfinished scan");
                    return;
                }
            }
            match self.store.load(id).await {
                Ok(Some(scan)) if !scan.state.is_final() => {
                    tracing::info!(scan_id = %id, status = scan.state.status_code(),
                        "adopted an unfinished scan");
                    let work = resumed_work(&scan);
                    self.spawn(scan, work);
                }
                Ok(_) => self.give_up(id).await,
                Err(error) => {
                    tracing::warn!(%error, scan_id = %id, "could not load an unfinished scan");
                    self.give_up(id).await;
                }
            }
        }
    }

    /// Marks a scan as driven by this instance. False if it already was: only
    /// the caller that gets true may run its job.
    pub(super) fn claim_locally(&self, id: Uuid) -> bool {
        lock(&self.running).insert(id)
    }

    /// Lets go of a scan claimed but not driven.
    async fn give_up(&self, id: Uuid) {
        self.release(id).await;
        lock(&self.running).remove(&id);
    }

    /// Runs a scan claimed locally and in the store as its job, in the
    /// background, inside a span carrying its id.
    pub(super) fn spawn(&self, scan: Scan, work: Work) {
        let span = tracing::info_span!("scan", scan_id = %scan.id, mode = scan.mode.as_str());
        tokio::spawn(self.clone().run_claimed(scan, work).instrument(span));
    }

    async fn run_claimed(self, scan: Scan, work: Work) {
        let id = scan.id;
        let lease = lease_key(id);
        tokio::select! {
            () = self.drive(scan, work) => {}
            () = self.keep_lease(&lease, self.timing.lease_ttl) => {
                tracing::warn!("another instance took over the scan; this one stops");
            }
        }
        self.give_up(id).await;
    }

    /// Renews the lease `key` until it is lost (then returns); runs alongside
    /// the work it protects. A lease that could not be renewed for as long as
    /// it lasts counts as lost: another instance may hold it by now.
    pub(super) async fn keep_lease(&self, key: &str, ttl: std::time::Duration) {
        let mut renewed = std::time::Instant::now();
        loop {
            tokio::time::sleep(ttl / 3).await;
            match self.store.acquire_lease(key, &self.instance, ttl).await {
                Ok(true) => renewed = std::time::Instant::now(),
                Ok(false) => return,
                Err(error) if renewed.elapsed() >= ttl => {
                    tracing::warn!(%error, key, "could not renew a lease in time; giving it up");
                    return;
                }
                Err(error) => tracing::warn!(%error, key, "could not renew a lease"),
            }
        }
    }

    async fn release(&self, id: Uuid) {
        if let Err(error) = self
            .store
            .release_lease(&lease_key(id), &self.instance)
            .await
        {
            tracing::warn!(%error, scan_id = %id, "could not release the claim on a scan");
        }
    }
}

/// What an adopted scan still needs. An upload whose file had not reached
/// VirusTotal cannot go on: the file was on the instance that received it.
fn resumed_work(scan: &Scan) -> Work {
    match (&scan.state, scan.mode) {
        (ScanState::Analysing { analysis_id, since }, _) => Work::Follow {
            analysis_id: analysis_id.clone(),
            since: *since,
        },
        (_, Mode::Lookup) => Work::Lookup,
        (_, Mode::Reanalyse) => Work::Reanalyse,
        (_, Mode::Upload) => Work::Interrupted,
    }
}
