//! The Redis backend: scans, the report cache, leases and the VirusTotal quota
//! window kept in one Redis server, so many app instances can share them.
//!
//! Every key starts with a configurable prefix, so several apps (or tests) can
//! share a server. Layout, with `{p}` the prefix:
//!
//! - `{p}scan:{id}`: the scan as JSON
//! - `{p}unfinished`: SET of the ids of scans that are not final
//! - `{p}history:{owner}`: ZSET of an owner's scan ids, scored by their history rank
//! - `{p}report:{sha256}`: a `CachedReport` as JSON, expiring with the cache entry
//! - `{p}report-alias:{md5 or sha1}`: the SHA-256 it stands for, with the same expiry
//! - `{p}lease:{key}`: the holder, expiring with the lease
//! - `{p}quota`: ZSET of VirusTotal call times (ms), for the sliding window
//!
//! Operations that touch several keys run as MULTI/EXEC pipelines or Lua
//! scripts, so other instances never see half of a change.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use uuid::Uuid;

use super::{CachedReport, ScanStore, StoreError};
use crate::scan::{Scan, StoredSummary, unix_now};

/// How long to wait for a TCP connection to Redis.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for an answer to a command.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Reconnection attempts after a lost connection, before pending calls fail.
/// Few, so a dead server fails calls within seconds; the next call tries again.
const RECONNECT_RETRIES: usize = 2;
/// The longest pause between reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);

/// Takes the lease in KEYS[1] for holder ARGV[1] for ARGV[2] ms, or renews it
/// if that holder has it already. 1 if the holder has it now, 0 otherwise.
const ACQUIRE_LEASE: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
if current == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
";

/// Saves a scan only if it exists and is unfinished. KEYS: scan, unfinished
/// set, history (the scan key again when there is no owner). ARGV: json, id,
/// final (1/0), history rank, has owner (1/0).
const UPDATE_SCAN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[3] == '1' then
  redis.call('SREM', KEYS[2], ARGV[2])
else
  redis.call('SADD', KEYS[2], ARGV[2])
end
if ARGV[5] == '1' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2]) end
return 1
";

/// Replaces the scan in KEYS[1] by ARGV[2] if it is still ARGV[1]: 1 if
/// replaced, 0 if it changed meanwhile, -1 if it is gone.
const REPLACE_SCAN_IF_UNCHANGED: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
";

/// How often `set_summary` tries again when the scan changed under it.
const SET_SUMMARY_ATTEMPTS: usize = 10;

/// Deletes the lease in KEYS[1] only if holder ARGV[1] still has it.
const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// The sliding window in KEYS[1]: at most ARGV[1] calls in ARGV[2] ms. ARGV[3]
/// makes the member unique when two calls land in the same millisecond.
/// Returns -1 when the call is recorded, else the ms until a slot frees up.
/// The server's clock is used so instances with skewed clocks agree.
const TAKE_QUOTA_SLOT: &str = r"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
    redis.call('PEXPIRE', KEYS[1], window)
    return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = window
if oldest[2] then
    wait = tonumber(oldest[2]) + window - now
end
if wait < 1 then
    wait = 1
end
return wait
";

/// Removes from the history in KEYS[1] each id ARGV[i] whose scan KEYS[i + 1]
/// does not exist.
const DROP_DANGLING: &str = r"
for i, id in ipairs(ARGV) do
    if redis.call('EXISTS', KEYS[i + 1]) == 0 then
        redis.call('ZREM', KEYS[1], id)
    end
end
return 0
";

/// Scans in Redis, shared by every app instance that uses the same server.
#[derive(Clone)]
pub struct RedisStore {
    /// Cheap to clone; it reconnects by itself after the server comes back.
    conn: ConnectionManager,
    prefix: String,
}

/// The part of a stored scan `delete` needs; lenient, so even a record that no
/// longer parses as a `Scan` can be deleted.
#[derive(Deserialize)]
struct OwnerOnly {
    #[serde(default)]
    owner: Option<String>,
}

/// Milliseconds for a PX or PEXPIRE argument, which must be at least 1.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// Connects to the server at `url` (e.g. `redis://127.0.0.1:6379/`), failing
    /// if it cannot be reached now. Every key starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn scan_key(&self, id: &str) -> String {
        format!("{}scan:{id}", self.prefix)
    }

    fn unfinished_key(&self) -> String {
        format!("{}unfinished", self.prefix)
    }

    fn history_key(&self, owner: &str) -> String {
        format!("{}history:{owner}", self.prefix)
    }

    fn report_key(&self, sha256: &str) -> String {
        format!("{}report:{sha256}", self.prefix)
    }

    fn alias_key(&self, hash: &str) -> String {
        format!("{}report-alias:{hash}", self.prefix)
    }

    fn lease_key(&self, key: &str) -> String {
        format!("{}lease:{key}", self.prefix)
    }

    fn quota_key(&self) -> String {
        format!("{}quota", self.prefix)
    }

    /// Removes scans and their index entries in one transaction; returns how
    /// many of the scans existed. `owned` pairs each id with its owner, if any.
    async fn remove_scans(&self, owned: &[(String, Option<String>)]) -> Result<usize, StoreError> {
        if owned.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let keys: Vec<String> = owned.iter().map(|(id, _)| self.scan_key(id)).collect();
        pipe.cmd("DEL").arg(&keys);
        let ids: Vec<&str> = owned.iter().map(|(id, _)| id.as_str()).collect();
        pipe.cmd("SREM")
            .arg(self.unfinished_key())
            .arg(&ids)
            .ignore();
        for (id, owner) in owned {
            if let Some(owner) = owner {
                pipe.cmd("ZREM")
                    .arg(self.history_key(owner))
                    .arg(id)
                    .ignore();
            }
        }
        let (removed,): (usize,) = pipe.query_async(&mut self.conn()).await?;
        Ok(removed)
    }
}

#[async_trait]
impl ScanStore for RedisStore {
    async fn save(&self, scan: &Scan) -> Result<(), StoreError> {
        let id = scan.id.to_string();
        let json = serde_json::to_string(scan)?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("SET").arg(self.scan_key(&id)).arg(json).ignore();
        let set_op = if scan.state.is_final() {
            "SREM"
        } else {
            "SADD"
        };
        pipe.cmd(set_op)
            .arg(self.unfinished_key())
            .arg(&id)
            .ignore();
        if let Some(owner) = &scan.owner {
            // Unix milliseconds are exact in a ZSET's f64 score.
            pipe.cmd("ZADD")
                .arg(self.history_key(owner))
                .arg(scan.history_rank() as f64)
                .arg(&id)
                .ignore();
        }
        pipe.exec_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn update(&self, scan: &Scan) -> Result<bool, StoreError> {
        let id = scan.id.to_string();
        let scan_key = self.scan_key(&id);
        let history_key = scan
            .owner
            .as_deref()
            .map_or_else(|| scan_key.clone(), |o| self.history_key(o));
        let written: i64 = redis::cmd("EVAL")
            .arg(UPDATE_SCAN)
            .arg(3)
            .arg(&scan_key)
            .arg(self.unfinished_key())
            .arg(history_key)
            .arg(serde_json::to_string(scan)?)
            .arg(&id)
            .arg(if scan.state.is_final() { "1" } else { "0" })
            .arg(scan.history_rank())
            .arg(if scan.owner.is_some() { "1" } else { "0" })
            .query_async(&mut self.conn())
            .await?;
        Ok(written == 1)
    }

    async fn set_summary(&self, id: Uuid, summary: &StoredSummary) -> Result<bool, StoreError> {
        let key = self.scan_key(&id.to_string());
        let mut conn = self.conn();
        // Read, change, and write back only if nothing was written meanwhile.
        for _ in 0..SET_SUMMARY_ATTEMPTS {
            let stored: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
            let Some(stored) = stored else {
                return Ok(false);
            };
            let mut scan: Scan = serde_json::from_str(&stored)?;
            scan.summary = Some(summary.clone());
            let replaced: i64 = redis::cmd("EVAL")
                .arg(REPLACE_SCAN_IF_UNCHANGED)
                .arg(1)
                .arg(&key)
                .arg(&stored)
                .arg(serde_json::to_string(&scan)?)
                .query_async(&mut conn)
                .await?;
            match replaced {
                1 => return Ok(true),
                -1 => return Ok(false),
                _ => {}
            }
        }
        Err(StoreError::Contended)
    }

    async fn load(&self, id: Uuid) -> Result<Option<Scan>, StoreError> {
        let json: Option<String> = redis::cmd("GET")
            .arg(self.scan_key(&id.to_string()))
            .query_async(&mut self.conn())
            .await?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let id = id.to_string();
        let json: Option<String> = redis::cmd("GET")
            .arg(self.scan_key(&id))
            .query_async(&mut self.conn())
            .await?;
        let Some(json) = json else {
            return Ok(false);
        };
        // An unreadable owner leaves at most a dangling history entry, which
        // `history` drops; refusing to delete would be worse.
        let owner = serde_json::from_str::<OwnerOnly>(&json)
            .ok()
            .and_then(|o| o.owner);
        // Counted by the DEL itself, so a concurrent delete is reported once.
        Ok(self.remove_scans(&[(id, owner)]).await? > 0)
    }

    async fn unfinished(&self) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.unfinished_key())
            .query_async(&mut self.conn())
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect())
    }

    async fn history(&self, owner: &str, limit: usize) -> Result<Vec<Scan>, StoreError> {
        let key = self.history_key(owner);
        let mut conn = self.conn();
        let mut found = Vec::new();
        let mut dangling = Vec::new();
        let mut start: usize = 0;
        // More than one page only when some listed scans are gone.
        while found.len() < limit {
            let wanted = limit - found.len();
            // -1 (to the end) if the last index does not fit Redis's integers.
            let stop = i64::try_from(start.saturating_add(wanted - 1)).unwrap_or(-1);
            let ids: Vec<String> = redis::cmd("ZREVRANGE")
                .arg(&key)
                .arg(start)
                .arg(stop)
                .query_async(&mut conn)
                .await?;
            if ids.is_empty() {
                break;
            }
            let listed = ids.len();
            start += listed;
            let keys: Vec<String> = ids.iter().map(|id| self.scan_key(id)).collect();
            let scans: Vec<Option<String>> =
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
            for (id, json) in ids.into_iter().zip(scans) {
                match json {
                    Some(json) => found.push(serde_json::from_str(&json)?),
                    None => dangling.push(id),
                }
            }
            if listed < wanted {
                break;
            }
        }
        if !dangling.is_empty() {
            // Entries whose scan is gone (deleted by hand, say) would be
            // fetched again on every visit. The script checks again, in case
            // a scan was saved since the MGET.
            let mut drop_dangling = redis::cmd("EVAL");
            drop_dangling
                .arg(DROP_DANGLING)
                .arg(dangling.len() + 1)
                .arg(&key);
            for id in &dangling {
                drop_dangling.arg(self.scan_key(id));
            }
            drop_dangling.arg(&dangling).exec_async(&mut conn).await?;
        }
        found.truncate(limit);
        Ok(found)
    }

    async fn clear_history(&self, owner: &str) -> Result<usize, StoreError> {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.history_key(owner))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await?;
        // Only the listed ids are removed from the history, so a scan saved
        // meanwhile stays listed along with its record.
        let owned: Vec<(String, Option<String>)> = ids
            .into_iter()
            .map(|id| (id, Some(owner.to_owned())))
            .collect();
        self.remove_scans(&owned).await
    }

    async fn cached_report(&self, hash: &str) -> Result<Option<CachedReport>, StoreError> {
        let hash = hash.to_ascii_lowercase();
        let mut conn = self.conn();
        let alias: Option<String> = redis::cmd("GET")
            .arg(self.alias_key(&hash))
            .query_async(&mut conn)
            .await?;
        let sha256 = alias.unwrap_or(hash);
        // Redis drops the entry when it expires, so no expiry check here.
        let json: Option<String> = redis::cmd("GET")
            .arg(self.report_key(&sha256))
            .query_async(&mut conn)
            .await?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    async fn cache_report(&self, entry: &CachedReport, ttl: Duration) -> Result<(), StoreError> {
        // Expire at fetched_at + ttl, as the embedded store does, rather than
        // ttl from now, so a report fetched a while ago is not kept longer.
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let remaining = entry
            .fetched_at
            .saturating_add(ttl_secs)
            .saturating_sub(unix_now());
        if remaining <= 0 {
            return Ok(());
        }
        let json = serde_json::to_string(entry)?;
        let report = &entry.report;
        let sha256 = report.sha256.to_ascii_lowercase();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("SET")
            .arg(self.report_key(&sha256))
            .arg(json)
            .arg("EX")
            .arg(remaining)
            .ignore();
        for alias in [&report.md5, &report.sha1].into_iter().flatten() {
            pipe.cmd("SET")
                .arg(self.alias_key(&alias.to_ascii_lowercase()))
                .arg(&sha256)
                .arg("EX")
                .arg(remaining)
                .ignore();
        }
        pipe.exec_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let held: i64 = redis::cmd("EVAL")
            .arg(ACQUIRE_LEASE)
            .arg(1)
            .arg(self.lease_key(key))
            .arg(holder)
            .arg(millis(ttl))
            .query_async(&mut self.conn())
            .await?;
        Ok(held == 1)
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        redis::cmd("EVAL")
            .arg(RELEASE_LEASE)
            .arg(1)
            .arg(self.lease_key(key))
            .arg(holder)
            .exec_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn take_quota_slot(
        &self,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>, StoreError> {
        let wait_ms: i64 = redis::cmd("EVAL")
            .arg(TAKE_QUOTA_SLOT)
            .arg(1)
            .arg(self.quota_key())
            .arg(limit)
            .arg(millis(window))
            .arg(Uuid::new_v4().simple().to_string())
            .query_async(&mut self.conn())
            .await?;
        Ok(u64::try_from(wait_ms).ok().map(Duration::from_millis))
    }

    async fn check(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}
