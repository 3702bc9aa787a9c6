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
            if lock(&self.running).contains(&id) {
                continue;
            }
            match self
                .store
                .acquire_lease(&lease_key(id), &self.instance, self.timing.lease_ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
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
                Ok(_) => self.release(id).await,
                Err(error) => {
                    tracing::warn!(%error, scan_id = %id, "could not load an unfinished scan");
                    self.release(id).await;
                }
            }
        }
    }

    /// Runs a claimed scan's job in the background, inside a span carrying its id.
    pub(super) fn spawn(&self, scan: Scan, work: Work) {
        lock(&self.running).insert(scan.id);
        let span = tracing::info_span!("scan", scan_id = %scan.id, mode = scan.mode.as_str());
        tokio::spawn(self.clone().run_claimed(scan, work).instrument(span));
    }

    async fn run_claimed(self, scan: Scan, work: Work) {
        let id = scan.id;
        tokio::select! {
            () = self.drive(scan, work) => {}
            () = self.keep_claim(id) => {
                tracing::warn!("another instance took over the scan; this one stops");
            }
        }
        self.release(id).await;
        lock(&self.running).remove(&id);
    }

    /// Renews the claim until it is lost (then returns); runs alongside the job.
    async fn keep_claim(&self, id: Uuid) {
        let key = lease_key(id);
        let ttl = self.timing.lease_ttl;
        loop {
            tokio::time::sleep(ttl / 3).await;
            match self.store.acquire_lease(&key, &self.instance, ttl).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => tracing::warn!(%error, "could not renew the claim on a scan"),
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
