//! Plain-language summaries of completed scans: written once, streamed to
//! every viewer as the writer produces them, and stored with the scan.
//!
//! However many people open a scan at once, one writer runs: later viewers get
//! the text written so far, then the rest live. An instance writing a summary
//! holds a lease on it; another instance then waits for the stored result
//! instead of asking the model again, and writes it only if the first one lets
//! go without storing one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::Instrument;
use uuid::Uuid;

use super::record::{Scan, ScanState, unix_now};
use super::service::{ScanError, Scanner, lock};
use crate::summary::{SummaryError, SummaryWriter};

/// How long a summary lease lasts unless its holder renews it (it does, while
/// writing), so another instance takes over soon after the holder dies.
const SUMMARY_LEASE: Duration = Duration::from_secs(30);

/// How often a viewer waiting on another instance's writer checks the store.
const FOREIGN_POLL: Duration = Duration::from_millis(500);

/// A finished summary, as stored with its scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSummary {
    pub text: String,
    /// Who wrote it: "built-in" or the model's name.
    pub author: String,
    /// Unix seconds.
    pub written_at: i64,
}

/// What a viewer of a summary receives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryEvent {
    /// More text (plain, not yet escaped).
    Chunk(String),
    /// The summary is complete and stored.
    Done { author: String },
    /// Writing failed; nothing was stored. The message is fit for the page.
    Failed(&'static str),
}

/// Summaries being written by this process, by scan.
#[derive(Default)]
pub struct SummaryHub {
    writing: Mutex<HashMap<Uuid, Arc<InFlight>>>,
}

/// One summary being written: the text so far and a channel for what follows.
struct InFlight {
    /// Tells this writer's text apart from any other's, for resuming viewers.
    run: String,
    /// Chunks sent so far. Appending and sending happen under this lock, so a
    /// viewer who copies it and subscribes under the same lock misses nothing.
    backlog: Mutex<Vec<String>>,
    events: broadcast::Sender<SummaryEvent>,
}

/// A viewer's feed: the chunks already written, then live events.
pub struct SummaryFeed {
    /// Names the text this feed carries: a viewer's offset into it means
    /// nothing for another run of the writer.
    pub run: String,
    pub backlog: Vec<SummaryEvent>,
    pub live: Option<broadcast::Receiver<SummaryEvent>>,
}

impl Scanner {
    /// The summary of a completed scan for one viewer: the stored one, or the
    /// one being written (starting the writer if nobody is). `again` writes a
    /// new one even if one is stored.
    pub async fn summary_feed(&self, id: Uuid, again: bool) -> Result<SummaryFeed, ScanError> {
        let scan = self.completed_scan(id).await?;
        if !again && let Some(summary) = &scan.summary {
            return Ok(SummaryFeed {
                run: format!("s{}", summary.written_at),
                backlog: vec![
                    SummaryEvent::Chunk(summary.text.clone()),
                    SummaryEvent::Done {
                        author: summary.author.clone(),
                    },
                ],
                live: None,
            });
        }
        Ok(self.join_or_start(scan))
    }

    /// Writes (or waits for) the summary and returns it once stored, for pages
    /// that cannot stream. A failure is returned as the page's message.
    pub async fn write_summary(
        &self,
        id: Uuid,
        again: bool,
    ) -> Result<Result<StoredSummary, &'static str>, ScanError> {
        let mut feed = self.summary_feed(id, again).await?;
        let mut text = String::new();
        let mut pending = std::mem::take(&mut feed.backlog).into_iter();
        loop {
            let event = match pending.next() {
                Some(event) => event,
                None => match feed.live.as_mut() {
                    Some(live) => match live.recv().await {
                        Ok(event) => event,
                        Err(_) => return Ok(Err(SummaryError::Interrupted.user_message())),
                    },
                    None => return Ok(Err(SummaryError::Interrupted.user_message())),
                },
            };
            match event {
                SummaryEvent::Chunk(chunk) => text.push_str(&chunk),
                SummaryEvent::Done { author } => {
                    return Ok(Ok(StoredSummary {
                        text,
                        author,
                        written_at: unix_now(),
                    }));
                }
                SummaryEvent::Failed(message) => return Ok(Err(message)),
            }
        }
    }

    async fn completed_scan(&self, id: Uuid) -> Result<Scan, ScanError> {
        let scan = self.store.load(id).await?.ok_or(ScanError::NotFound)?;
        if scan.state != ScanState::Completed || scan.report.is_none() {
            return Err(ScanError::NothingToSummarise);
        }
        Ok(scan)
    }

    /// Subscribes to the writer of this scan's summary in this process, or starts one.
    fn join_or_start(&self, scan: Scan) -> SummaryFeed {
        let mut writing = lock(&self.summaries.writing);
        if let Some(flight) = writing.get(&scan.id) {
            let backlog = lock(&flight.backlog);
            return SummaryFeed {
                run: flight.run.clone(),
                backlog: backlog.iter().cloned().map(SummaryEvent::Chunk).collect(),
                live: Some(flight.events.subscribe()),
            };
        }
        let (events, live) = broadcast::channel(1024);
        let run = format!("w{}", Uuid::new_v4().simple());
        let flight = Arc::new(InFlight {
            run: run.clone(),
            backlog: Mutex::default(),
            events,
        });
        writing.insert(scan.id, Arc::clone(&flight));
        drop(writing);

        let span = tracing::info_span!("summary", scan_id = %scan.id);
        let scanner = self.clone();
        tokio::spawn(async move { scanner.produce(scan, flight).await }.instrument(span));
        SummaryFeed {
            run,
            backlog: Vec::new(),
            live: Some(live),
        }
    }

    /// Runs the writer (or waits for another instance's), publishing as it goes;
    /// stores the summary only if it is complete.
    async fn produce(self, scan: Scan, flight: Arc<InFlight>) {
        let id = scan.id;
        let last = match self.write_once(scan, &flight).await {
            Ok(author) => SummaryEvent::Done { author },
            Err(message) => SummaryEvent::Failed(message),
        };
        {
            let _backlog = lock(&flight.backlog);
            let _ = flight.events.send(last);
        }
        lock(&self.summaries.writing).remove(&id);
    }

    /// Writes the summary while holding its lease, so that one instance at a
    /// time asks the writer. While another instance holds it, waits for what
    /// that one stores; if it lets go without storing a new summary (its writer
    /// failed, or it died and the lease expired), this instance writes it.
    async fn write_once(&self, scan: Scan, flight: &InFlight) -> Result<String, &'static str> {
        let lease = format!("summary:{}", scan.id);
        // With "write again", the stored summary is the one being replaced.
        let replaced = scan.summary.clone();
        loop {
            match self
                .store
                .acquire_lease(&lease, &self.instance, SUMMARY_LEASE)
                .await
            {
                Ok(true) => {
                    // Another instance may have stored it just before letting go.
                    let write = async {
                        match self.new_summary(scan.id, replaced.as_ref()).await {
                            Some(summary) => Ok(publish_stored(summary, flight)),
                            None => self.write_and_store(scan, flight).await,
                        }
                    };
                    let outcome = tokio::select! {
                        outcome = write => outcome,
                        () = self.keep_lease(&lease, SUMMARY_LEASE) => {
                            tracing::warn!("another instance took over the summary");
                            Err(SummaryError::Interrupted.user_message())
                        }
                    };
                    if let Err(error) = self.store.release_lease(&lease, &self.instance).await {
                        tracing::warn!(%error, "could not release the summary lease");
                    }
                    return outcome;
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "summary lease unavailable; writing anyway");
                    return self.write_and_store(scan, flight).await;
                }
            }
            tokio::time::sleep(FOREIGN_POLL).await;
            if let Some(summary) = self.new_summary(scan.id, replaced.as_ref()).await {
                return Ok(publish_stored(summary, flight));
            }
        }
    }

    /// The stored summary of a scan, unless it is still `replaced`.
    async fn new_summary(
        &self,
        id: Uuid,
        replaced: Option<&StoredSummary>,
    ) -> Option<StoredSummary> {
        match self.store.load(id).await {
            Ok(Some(Scan {
                summary: Some(summary),
                ..
            })) if Some(&summary) != replaced => Some(summary),
            _ => None,
        }
    }

    async fn write_and_store(&self, scan: Scan, flight: &InFlight) -> Result<String, &'static str> {
        let Some(report) = scan.report.as_ref() else {
            return Err(SummaryError::Refused.user_message());
        };
        let writer: &dyn SummaryWriter = self.writer.as_ref();
        let started = std::time::Instant::now();
        let mut stream = writer.write(report).await.map_err(|e| failed(&e))?;
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| failed(&e))?;
            text.push_str(&chunk);
            let mut backlog = lock(&flight.backlog);
            backlog.push(chunk.clone());
            let _ = flight.events.send(SummaryEvent::Chunk(chunk));
        }
        if text.trim().is_empty() {
            return Err(failed(&SummaryError::Refused));
        }
        let author = writer.author();
        let summary = StoredSummary {
            text,
            author: author.clone(),
            written_at: unix_now(),
        };
        self.store_summary(scan.id, summary).await?;
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, %author, "summary written");
        Ok(author)
    }

    /// Saves the summary with the scan, leaving the rest as stored.
    async fn store_summary(&self, id: Uuid, summary: StoredSummary) -> Result<(), &'static str> {
        match self.store.set_summary(id, &summary).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("This scan was deleted while its summary was being written."),
            Err(error) => {
                tracing::error!(%error, "could not store the summary");
                Err("The summary was written but could not be saved. Try again.")
            }
        }
    }
}

/// Hands a summary another instance stored to this instance's viewers, and
/// returns its author.
fn publish_stored(summary: StoredSummary, flight: &InFlight) -> String {
    let mut backlog = lock(&flight.backlog);
    backlog.push(summary.text.clone());
    let _ = flight.events.send(SummaryEvent::Chunk(summary.text));
    summary.author
}

fn failed(error: &SummaryError) -> &'static str {
    tracing::warn!(kind = error.kind(), %error, "summary could not be written");
    error.user_message()
}
