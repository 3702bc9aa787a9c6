//! Typed settings, read once from the environment at start-up and passed down.
//!
//! A bad value stops start-up with an error naming the variable that holds it.
//! Missing API keys are not errors: the app runs and says on every page what is
//! missing.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The public VirusTotal API v3 endpoint.
pub const DEFAULT_VT_BASE_URL: &str = "https://www.virustotal.com/api/v3";

/// VirusTotal's hard ceiling for one file, reached through an upload URL.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 650 * 1024 * 1024;

/// Files up to this size are posted to `/files` directly; larger ones go through
/// an upload URL. VirusTotal documents 32 MB for the direct route; staying at
/// 30 MiB leaves room for the multipart framing around the file.
pub const DEFAULT_DIRECT_UPLOAD_LIMIT: u64 = 30 * 1024 * 1024;

/// A value that must never be printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that puts it into a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// An IP address or a CIDR range of them, such as `10.0.0.0/8` or `::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| ())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| ())?,
            None => max,
        };
        if prefix > max {
            return Err(());
        }
        Ok(Self { addr, prefix })
    }
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not valid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("{var} names a file that cannot be read: {source}")]
    SecretFile {
        var: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Everything the app can be told from outside.
#[derive(Debug, Clone)]
pub struct Config {
    pub vt_api_key: Option<Secret>,
    pub vt_base_url: String,
    pub bind: String,
    pub data_dir: PathBuf,
    pub upload_dir: PathBuf,
    pub max_upload_bytes: u64,
    pub direct_upload_limit: u64,
    /// Time between two polls of one analysis.
    pub poll_interval: Duration,
    /// How long an analysis may take before the scan is given up.
    pub analysis_deadline: Duration,
    /// First wait before retrying a transient VirusTotal failure; doubles each time.
    pub retry_base_delay: Duration,
    /// Timeout of one VirusTotal API call (uploads get longer, scaled by size).
    pub vt_request_timeout: Duration,
    /// Most VirusTotal calls in any `vt_quota_window`, across every instance.
    pub vt_requests_per_minute: u32,
    /// The sliding window the request limit applies to (a minute, except in tests).
    pub vt_quota_window: Duration,
    /// How long a fetched report is reused instead of asking VirusTotal again.
    pub vt_cache_ttl: Duration,
    /// Redis URL (it may hold a password); unset keeps scans in the embedded store.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key, so several deployments can share one server.
    pub redis_key_prefix: String,
    /// How long a scan stays claimed by an instance that stops renewing its claim.
    pub lease_ttl: Duration,
    /// How often each instance looks for unfinished scans nobody is driving.
    pub worker_interval: Duration,
    /// Key of an OpenAI-compatible server; local servers often need none.
    pub openai_api_key: Option<Secret>,
    /// Base URL of an OpenAI-compatible API, e.g. `http://127.0.0.1:11434/v1` for Ollama.
    pub openai_base_url: Option<String>,
    /// The model to ask; with no model set, the built-in explainer writes summaries.
    pub openai_model: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed when telling clients apart.
    pub trusted_proxies: Vec<IpNet>,
    /// Requests one client may make a minute, of any kind.
    pub rate_limit_per_minute: u32,
    /// Scans and summaries one client may start a minute.
    pub scan_rate_limit_per_minute: u32,
    /// How long the model may take to start answering, and to send each next
    /// part. Generous because a local server may first have to load the model.
    pub llm_timeout: Duration,
}

impl Config {
    /// Settings with defaults for everything, keeping files under `data_dir`.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            vt_api_key: None,
            vt_base_url: DEFAULT_VT_BASE_URL.to_owned(),
            bind: "127.0.0.1:8080".to_owned(),
            upload_dir: data_dir.join("uploads"),
            data_dir,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            direct_upload_limit: DEFAULT_DIRECT_UPLOAD_LIMIT,
            poll_interval: Duration::from_secs(20),
            analysis_deadline: Duration::from_secs(20 * 60),
            retry_base_delay: Duration::from_secs(2),
            vt_request_timeout: Duration::from_secs(30),
            vt_requests_per_minute: 4,
            vt_quota_window: Duration::from_secs(60),
            vt_cache_ttl: Duration::from_secs(24 * 60 * 60),
            redis_url: None,
            redis_key_prefix: "scanner:".to_owned(),
            lease_ttl: Duration::from_secs(30),
            worker_interval: Duration::from_secs(5),
            openai_api_key: None,
            openai_base_url: None,
            openai_model: None,
            llm_timeout: Duration::from_secs(60),
            trusted_proxies: Vec::new(),
            rate_limit_per_minute: 600,
            scan_rate_limit_per_minute: 20,
        }
    }

    /// Reads the process environment (after `.env`, which `main` loads).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "data".to_owned()));
        let mut config = Self::with_data_dir(data_dir);

        config.vt_api_key = secret("VT_API_KEY", &get)?;
        if let Some(url) = get("VT_BASE_URL") {
            config.vt_base_url = parse_base_url("VT_BASE_URL", &url)?;
        }
        if let Some(bind) = get("BIND") {
            config.bind = bind;
        }
        if let Some(dir) = get("UPLOAD_DIR") {
            config.upload_dir = PathBuf::from(dir);
        }
        if let Some(value) = get("MAX_UPLOAD_BYTES") {
            config.max_upload_bytes = parse_positive("MAX_UPLOAD_BYTES", &value)?;
        }
        if let Some(value) = get("VT_POLL_SECONDS") {
            config.poll_interval = Duration::from_secs(parse_positive("VT_POLL_SECONDS", &value)?);
        }
        if let Some(value) = get("VT_REQUESTS_PER_MINUTE") {
            let limit = parse_positive("VT_REQUESTS_PER_MINUTE", &value)?;
            config.vt_requests_per_minute = u32::try_from(limit).unwrap_or(u32::MAX);
        }
        if let Some(value) = get("VT_CACHE_TTL") {
            config.vt_cache_ttl = parse_duration("VT_CACHE_TTL", &value)?;
        }
        config.redis_url = secret("REDIS_URL", &get)?;
        if let Some(prefix) = get("REDIS_KEY_PREFIX") {
            config.redis_key_prefix = prefix;
        }
        if let Some(list) = get("TRUSTED_PROXIES") {
            config.trusted_proxies = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|_| ConfigError::Invalid {
                        var: "TRUSTED_PROXIES",
                        reason: format!("{s:?} is not an IP address or CIDR range"),
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(value) = get("RATE_LIMIT_PER_MINUTE") {
            let limit = parse_positive("RATE_LIMIT_PER_MINUTE", &value)?;
            config.rate_limit_per_minute = u32::try_from(limit).unwrap_or(u32::MAX);
        }
        if let Some(value) = get("SCAN_RATE_LIMIT_PER_MINUTE") {
            let limit = parse_positive("SCAN_RATE_LIMIT_PER_MINUTE", &value)?;
            config.scan_rate_limit_per_minute = u32::try_from(limit).unwrap_or(u32::MAX);
        }
        config.openai_api_key = secret("OPENAI_API_KEY", &get)?;
        if let Some(url) = get("OPENAI_BASE_URL") {
            config.openai_base_url = Some(parse_base_url("OPENAI_BASE_URL", &url)?);
        }
        config.openai_model = get("OPENAI_MODEL");
        Ok(config)
    }

    /// Whether a VirusTotal API key is configured.
    pub fn vt_configured(&self) -> bool {
        self.vt_api_key.is_some()
    }
}

/// A secret from `NAME`, or from the file that `NAME_FILE` points at (Docker secrets).
fn secret(
    name: &'static str,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    if let Some(value) = get(name) {
        return Ok(Some(Secret::new(value)));
    }
    let file_var: &'static str = match name {
        "VT_API_KEY" => "VT_API_KEY_FILE",
        "OPENAI_API_KEY" => "OPENAI_API_KEY_FILE",
        "REDIS_URL" => "REDIS_URL_FILE",
        _ => return Ok(None),
    };
    let Some(path) = get(file_var) else {
        return Ok(None);
    };
    let contents = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
        var: file_var,
        source,
    })?;
    let value = contents.trim();
    Ok((!value.is_empty()).then(|| Secret::new(value)))
}

fn parse_positive(var: &'static str, value: &str) -> Result<u64, ConfigError> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Invalid {
            var,
            reason: format!("expected a positive whole number, got {value:?}"),
        }),
    }
}

/// A duration as whole seconds, or with a unit: `90s`, `30m`, `24h`, `7d`.
fn parse_duration(var: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let (digits, unit_seconds) = match value.char_indices().last() {
        Some((i, 's')) => (&value[..i], 1),
        Some((i, 'm')) => (&value[..i], 60),
        Some((i, 'h')) => (&value[..i], 60 * 60),
        Some((i, 'd')) => (&value[..i], 24 * 60 * 60),
        _ => (value, 1),
    };
    match digits.trim().parse::<u64>() {
        Ok(n) => Ok(Duration::from_secs(n.saturating_mul(unit_seconds))),
        Err(_) => Err(ConfigError::Invalid {
            var,
            reason: format!("expected a duration such as 3600, 90m or 24h, got {value:?}"),
        }),
    }
}

fn parse_base_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(value.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::Invalid {
            var,
            reason: format!("expected an http(s) URL, got {value:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn starts_without_any_variable() {
        let config = config_from(&[]).unwrap();
        assert!(config.vt_api_key.is_none());
        assert_eq!(config.bind, "127.0.0.1:8080");
        assert_eq!(config.max_upload_bytes, 650 * 1024 * 1024);
        assert_eq!(config.upload_dir, PathBuf::from("data/uploads"));
    }

    #[test]
    fn blank_key_counts_as_missing() {
        assert!(
            config_from(&[("VT_API_KEY", "  ")])
                .unwrap()
                .vt_api_key
                .is_none()
        );
    }

    #[test]
    fn bad_number_names_the_variable() {
        let err = config_from(&[("MAX_UPLOAD_BYTES", "lots")]).unwrap_err();
        assert!(err.to_string().starts_with("MAX_UPLOAD_BYTES"), "{err}");
    }

    #[test]
    fn durations_take_units() {
        let config = config_from(&[("VT_CACHE_TTL", "12h")]).unwrap();
        assert_eq!(config.vt_cache_ttl, Duration::from_secs(12 * 3600));
        let config = config_from(&[("VT_CACHE_TTL", "600")]).unwrap();
        assert_eq!(config.vt_cache_ttl, Duration::from_secs(600));
        assert!(config_from(&[("VT_CACHE_TTL", "soon")]).is_err());
        assert_eq!(
            config_from(&[]).unwrap().vt_cache_ttl,
            Duration::from_secs(86400)
        );
        assert_eq!(config_from(&[]).unwrap().vt_requests_per_minute, 4);
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let config = config_from(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]).unwrap();
        let [range, single, v6] = config.trusted_proxies[..] else {
            panic!("three entries")
        };
        assert!(range.contains("10.20.30.40".parse().unwrap()));
        assert!(!range.contains("11.0.0.1".parse().unwrap()));
        assert!(single.contains("127.0.0.1".parse().unwrap()));
        assert!(!single.contains("127.0.0.2".parse().unwrap()));
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("127.0.0.1".parse().unwrap()));
        let err = config_from(&[("TRUSTED_PROXIES", "10.0.0.0/33")]).unwrap_err();
        assert!(err.to_string().starts_with("TRUSTED_PROXIES"), "{err}");
        assert!(
            "0.0.0.0/0"
                .parse::<IpNet>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn key_is_read_from_a_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vt_key");
        std::fs::write(&path, "from-file\n").unwrap();
        let config = config_from(&[("VT_API_KEY_FILE", path.to_str().unwrap())]).unwrap();
        assert_eq!(config.vt_api_key.unwrap().expose(), "from-file");
    }

    #[test]
    fn debug_output_hides_the_key() {
        let config = config_from(&[("VT_API_KEY", "super-secret-value")]).unwrap();
        assert!(!format!("{config:?}").contains("super-secret-value"));
    }
}
