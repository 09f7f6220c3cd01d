//! Configuration: built-in defaults, then an optional TOML file, then `JOBLINE_*` environment
//! variables (nested keys joined by `__`). Loaded with figment, which merges the sources and
//! names the offending key and source in its errors; everything is checked once at start.

use crate::model::Zone;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything an operator can tune; `docs/configuration.md` lists each key, its default and
/// meaning, and `jobline.example.toml` sets each to its default (a test keeps all three equal).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listen address of the HTTP API.
    pub bind: String,
    /// Base of every `resultUrl` and image URL; `http://<bind>` when unset.
    pub public_url: Option<String>,
    /// `sqlite://PATH` or `postgres://…`.
    pub database_url: String,
    /// Connections in the reader pool.
    pub db_pool_size: u32,
    /// Reader (query) actors.
    pub query_actors: usize,
    /// Most writes the persistence writer commits in one transaction.
    pub write_batch_max: usize,
    /// Zone of every time the API writes.
    #[serde(deserialize_with = "zone")]
    pub timezone: Zone,
    /// How long a result can be downloaded.
    #[serde(deserialize_with = "duration")]
    pub result_ttl: Duration,
    /// How long job detail and log are kept.
    #[serde(deserialize_with = "duration")]
    pub job_retention: Duration,
    /// How long webhook notifications and their attempts are kept.
    #[serde(deserialize_with = "duration")]
    pub notification_retention: Duration,
    /// Timeout of one webhook delivery attempt.
    #[serde(deserialize_with = "duration")]
    pub webhook_timeout: Duration,
    /// Delays between webhook delivery attempts.
    #[serde(deserialize_with = "duration_list")]
    pub webhook_retry_schedule: Vec<Duration>,
    /// Concurrent webhook deliveries.
    pub webhook_workers: usize,
    /// Whether outbound requests may reach loopback, private and other non-public addresses.
    pub allow_private_targets: bool,
    /// The HTTP proxy webhook deliveries and image downloads go through (`http://host:port`,
    /// credentials allowed). Unset: they connect directly, and the environment's proxy
    /// variables (`HTTP_PROXY`, …) are ignored so that nothing bypasses the address guard.
    pub outbound_proxy: Option<String>,
    /// Longest time one image download may take (connecting, redirects and the body): a
    /// slow source fails only its own image (`download-timeout`), never the whole job.
    /// The default keeps the worst request (100 slow images, 4 at a time: 25 rounds of
    /// 20 s) within the images queue's default `max_run_time` of 10 minutes.
    #[serde(deserialize_with = "duration")]
    pub image_download_timeout: Duration,
    /// Largest image accepted, in bytes: checked against `Content-Length` and again while
    /// the body streams, so a lying or absent header cannot make a worker buffer more.
    pub image_max_bytes: u64,
    /// Downloads one images job runs at once: bounds the memory (this many times
    /// `image_max_bytes`) and the load one job puts on a source server.
    pub image_download_concurrency: usize,
    /// Leaky bucket size per API token; 0 disables rate limiting.
    pub rate_limit_capacity: u32,
    /// Leaky bucket drain per second.
    pub rate_limit_refill_per_sec: u32,
    /// Buckets kept in memory at most (per node); the least recently used is forgotten
    /// first. About 100 bytes each.
    pub rate_limit_max_buckets: usize,
    /// How long a request body may take to arrive, from the end of the request head; a
    /// slower one is answered 408 and its connection closed, so a client trickling a body
    /// cannot hold a connection (the head itself has actix-web's 5 s).
    #[serde(deserialize_with = "duration")]
    pub body_read_timeout: Duration,
    /// Running jobs of one e-shop per queue at most: fairness between e-shops.
    pub max_running_per_eshop: u32,
    /// How long a claimed job's lease lasts without renewal.
    #[serde(deserialize_with = "duration")]
    pub lease: Duration,
    /// How often running jobs' leases are renewed.
    #[serde(deserialize_with = "duration")]
    pub heartbeat: Duration,
    /// How many times a job may be started before it is killed.
    pub max_attempts: u32,
    /// How long running jobs may finish after SIGTERM.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// The backstop: how often an idle queue looks for jobs nobody woke it for (a wake-up
    /// lost while a PostgreSQL listener reconnects, jobs whose lease was taken back).
    #[serde(deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// Least time between two wake-up signals a node's writer sends other nodes for one
    /// queue (PostgreSQL): each costs every listening node a wake-up, and a submit batch
    /// comes every millisecond under load. A queue's new jobs reach idle workers on other
    /// nodes at most this late; this node's own workers are woken at once. Zero signals
    /// every batch.
    #[serde(deserialize_with = "duration")]
    pub wake_signal_interval: Duration,
    /// How long an operator's dashboard session lasts after signing in.
    #[serde(deserialize_with = "duration")]
    pub dashboard_session_ttl: Duration,
    /// Worker pools by queue name.
    pub queues: BTreeMap<String, QueueConfig>,
}

/// One queue's worker pool on this node, as configured; unset keys take the defaults
/// its job kinds declare for this machine (`actors::pool::settings`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Pins the pool at this size (both bounds); 0: this node runs none of its jobs.
    pub workers: Option<usize>,
    /// Workers kept while the queue is idle.
    pub min_workers: Option<usize>,
    /// Most workers the pool grows to.
    pub max_workers: Option<usize>,
    /// How long a worker stays idle before it leaves (down to `min_workers`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub idle_timeout: Option<Duration>,
    /// How long the oldest pending job must have waited, with every worker busy, before
    /// the pool grows.
    #[serde(default, deserialize_with = "opt_duration")]
    pub scale_up_after: Option<Duration>,
    /// Most workers added per scaling step.
    pub scale_up_step: Option<usize>,
    /// Most idle workers that leave per scaling step.
    pub scale_down_step: Option<usize>,
    /// A job running longer is killed.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_run_time: Option<Duration>,
}

/// The most `image_max_bytes` may be: a downloaded image is held whole in memory.
const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// The longest `wake_signal_interval`: the contract promises other nodes' idle workers hear
/// of a new job within milliseconds; a second is already generous.
const MAX_WAKE_SIGNAL_INTERVAL: Duration = Duration::from_secs(1);

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1:8080".into(),
            public_url: None,
            database_url: "sqlite://jobline.db".into(),
            db_pool_size: 8,
            query_actors: 4,
            write_batch_max: 512,
            timezone: Zone::utc(),
            result_ttl: Duration::from_secs(24 * 3600),
            job_retention: Duration::from_secs(30 * 24 * 3600),
            notification_retention: Duration::from_secs(7 * 24 * 3600),
            webhook_timeout: Duration::from_secs(15),
            webhook_retry_schedule: ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
                .iter()
                .map(|s| parse_duration(s).expect("valid default"))
                .collect(),
            webhook_workers: 16,
            allow_private_targets: false,
            outbound_proxy: None,
            image_download_timeout: Duration::from_secs(20),
            image_max_bytes: 20 * 1024 * 1024,
            image_download_concurrency: 4,
            rate_limit_capacity: 200,
            rate_limit_refill_per_sec: 10,
            rate_limit_max_buckets: 100_000,
            body_read_timeout: Duration::from_secs(30),
            max_running_per_eshop: 2,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            max_attempts: 3,
            shutdown_grace: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            wake_signal_interval: Duration::from_millis(5),
            dashboard_session_ttl: Duration::from_secs(12 * 3600),
            queues: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Loads defaults, then the TOML file (`path`, else `JOBLINE_CONFIG`, else
    /// `./jobline.toml` when it exists), then the environment, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        let path: Option<PathBuf> = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("JOBLINE_CONFIG").map(PathBuf::from));
        let mut figment = Figment::new();
        let file = match path {
            Some(p) if !p.is_file() => {
                return Err(format!("configuration file {} does not exist", p.display()))
            }
            Some(p) => Some(p),
            None if Path::new("jobline.toml").is_file() => Some(PathBuf::from("jobline.toml")),
            None => None,
        };
        match &file {
            Some(p) => {
                log::info!("configuration file: {}", p.display());
                figment = figment.merge(Toml::file_exact(p));
            }
            None => log::info!("no configuration file: defaults and JOBLINE_* variables"),
        }
        figment = figment.merge(Env::prefixed("JOBLINE_").split("__").ignore(&["config"]));
        let config: Config = figment.extract().map_err(describe)?;
        if let Some((key, why)) = config.problem() {
            let value = figment
                .find_value(&key)
                .ok()
                .and_then(|v| serde_json::to_string(&v).ok())
                .map(|v| format!(" = {v}"))
                .unwrap_or_default();
            let source = figment
                .find_metadata(&key)
                .map_or_else(|| "default".to_string(), source_of);
            return Err(format!(
                "invalid configuration: `{key}`{value} ({source}) {why}"
            ));
        }
        Ok(config)
    }

    /// Checks what serde cannot: ranges, URL schemes. The queues are checked against the
    /// job kinds and the machine when the pools are planned (`actors::pool::settings`).
    pub fn validate(&self) -> Result<(), String> {
        match self.problem() {
            Some((key, why)) => Err(format!("invalid configuration: `{key}` {why}")),
            None => Ok(()),
        }
    }

    /// The first value serde accepts but jobline cannot use: its key and why.
    fn problem(&self) -> Option<(String, String)> {
        let bad = |key: &str, why: &str| Some((key.to_string(), why.to_string()));
        if self.bind.parse::<SocketAddr>().is_err() {
            return bad("bind", "must be an address like 127.0.0.1:8080");
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return bad("public_url", "must start with http:// or https://");
            }
        }
        if self.dashboard_session_ttl.is_zero() {
            return bad("dashboard_session_ttl", "must be above zero");
        }
        if let Some(proxy) = &self.outbound_proxy {
            let valid = url::Url::parse(proxy).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
            });
            if !valid || reqwest::Proxy::all(proxy).is_err() {
                return bad(
                    "outbound_proxy",
                    "must be a URL like http://proxy.internal:3128",
                );
            }
        }
        if crate::db::Backend::from_url(&self.database_url).is_err() {
            return bad("database_url", "must start with sqlite:// or postgres://");
        }
        for (key, value) in [
            ("db_pool_size", self.db_pool_size as usize),
            ("query_actors", self.query_actors),
            ("write_batch_max", self.write_batch_max),
            ("webhook_workers", self.webhook_workers),
            ("rate_limit_max_buckets", self.rate_limit_max_buckets),
            ("max_running_per_eshop", self.max_running_per_eshop as usize),
            ("max_attempts", self.max_attempts as usize),
            (
                "image_download_concurrency",
                self.image_download_concurrency,
            ),
            ("image_max_bytes", self.image_max_bytes.min(1) as usize),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if self.image_max_bytes > MAX_IMAGE_BYTES {
            return bad(
                "image_max_bytes",
                "must be at most 1 GiB (images are held in memory)",
            );
        }
        if self.webhook_retry_schedule.is_empty() {
            return bad("webhook_retry_schedule", "must list at least one delay");
        }
        if self.wake_signal_interval > MAX_WAKE_SIGNAL_INTERVAL {
            return bad(
                "wake_signal_interval",
                "must be at most 1s (idle workers on other nodes wait for it)",
            );
        }
        if self.heartbeat.is_zero() || self.heartbeat >= self.lease {
            return bad("heartbeat", "must be above zero and shorter than `lease`");
        }
        for (key, d) in [
            ("result_ttl", self.result_ttl),
            ("job_retention", self.job_retention),
            ("webhook_timeout", self.webhook_timeout),
            ("poll_interval", self.poll_interval),
            ("image_download_timeout", self.image_download_timeout),
            ("body_read_timeout", self.body_read_timeout),
        ] {
            if d.is_zero() {
                return bad(key, "must be longer than zero");
            }
        }
        None
    }

    /// The base URL of result and image links.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
            .trim_end_matches('/')
            .to_string()
    }
}

/// Names the key (as written in TOML: lower case, dotted) and the source of every error.
/// Where a value came from: `TOML file /etc/jobline.toml`, `` `JOBLINE_` environment
/// variable(s)``.
fn source_of(m: &figment::Metadata) -> String {
    match &m.source {
        Some(figment::Source::File(path)) => format!("{} {}", m.name, path.display()),
        _ => m.name.to_string(),
    }
}

/// Figment's errors, each with its key (when there is one: a TOML syntax error has none,
/// and names its line instead), its source and the value.
fn describe(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_lowercase();
            let source = e
                .metadata
                .as_ref()
                .map(source_of)
                .unwrap_or_else(|| "configuration".into());
            if key.is_empty() {
                format!("invalid configuration ({source}): {}", e.kind)
            } else {
                format!("invalid configuration: `{key}` ({source}): {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses `250ms`, `5s`, `10m`, `24h`, `30d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` needs a unit (ms, s, m, h, d)"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 5s"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}` has an unknown unit (use ms, s, m, h or d)")),
    };
    n.checked_mul(ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is too long"))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn zone<'de, D: Deserializer<'de>>(d: D) -> Result<Zone, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// A list of durations: a TOML array, or a comma-separated string (the environment's form).
fn duration_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Joined(String),
        List(Vec<String>),
    }
    let items = match Form::deserialize(d)? {
        Form::Joined(s) => s.split(',').map(str::to_string).collect(),
        Form::List(v) => v,
    };
    items
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_duration(s).map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn durations_parse_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn defaults_match_the_contract() {
        Jail::expect_with(|_| {
            let c = Config::load(None).unwrap();
            assert_eq!(c.bind, "127.0.0.1:8080");
            assert_eq!(c.public_url(), "http://127.0.0.1:8080");
            assert_eq!(c.webhook_retry_schedule.len(), 7);
            assert!(c.queues.is_empty());
            assert_eq!(c.image_download_timeout, Duration::from_secs(20));
            assert_eq!(c.image_max_bytes, 20 * 1024 * 1024);
            assert_eq!(c.image_download_concurrency, 4);
            assert_eq!(c.body_read_timeout, Duration::from_secs(30));
            assert_eq!(c.outbound_proxy, None);
            Ok(())
        });
    }

    /// `docs/configuration.md`'s table, `jobline.example.toml` and `Config::default()` name
    /// the same keys with the same defaults.
    #[test]
    fn reference_matches_the_code() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = root.join("jobline.example.toml");
        let loaded: Config = Figment::new()
            .merge(Toml::file_exact(&example))
            .extract()
            .expect("jobline.example.toml loads");
        loaded.validate().unwrap();
        let default = Config::default();
        let queues = crate::jobs::Registry::standard().queues();
        let plan = |c: &Config| crate::actors::pool::plan(c, &queues, 2).unwrap();
        assert_eq!(plan(&loaded), plan(&default), "example = defaults");
        let rest = |c: &Config| {
            format!(
                "{:?}",
                Config {
                    queues: BTreeMap::new(),
                    ..c.clone()
                }
            )
        };
        assert_eq!(rest(&loaded), rest(&default), "example = defaults");

        // The example's values as text, as the table writes them.
        let values: BTreeMap<String, serde_json::Value> = Figment::new()
            .merge(Toml::file_exact(&example))
            .extract()
            .unwrap();
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        let reference = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
        let mut documented = Vec::new();
        for row in reference.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split(" | ").collect();
            let key = cells[0].trim_start_matches("| ").trim_matches('`');
            let default_cell = cells[1];
            documented.push(key.to_string());
            match key {
                "public_url" | "outbound_proxy" => assert!(!values.contains_key(key)),
                // Set in the example where the default is a value (not a formula of the
                // machine or of another key), the same for every queue.
                _ if key.starts_with("queues.<name>.") => {
                    let field = key.trim_start_matches("queues.<name>.");
                    for queue in ["snapshots", "images"] {
                        if let Some(v) = values["queues"][queue].get(field) {
                            assert!(default_cell.contains(&format!("`{}`", text(v))), "{row}");
                        }
                    }
                }
                _ => {
                    let value = values
                        .get(key)
                        .unwrap_or_else(|| panic!("{key} is not in jobline.example.toml"));
                    let first = default_cell.split('`').nth(1).unwrap_or(default_cell);
                    assert_eq!(first, text(value), "default of {key}");
                }
            }
        }
        // Every field of Config is documented once (queues by their nested keys).
        let names = |debug: String| -> Vec<String> {
            debug
                .lines()
                .filter_map(|l| l.strip_prefix("    "))
                .filter(|l| !l.starts_with(' '))
                .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
                .collect()
        };
        let nested = names(format!("{:#?}", QueueConfig::default()));
        let mut fields: Vec<String> = names(format!("{default:#?}"))
            .into_iter()
            .flat_map(|k| match k.as_str() {
                "queues" => nested
                    .iter()
                    .map(|f| format!("queues.<name>.{f}"))
                    .collect(),
                _ => vec![k],
            })
            .collect();
        fields.sort();
        documented.sort();
        assert_eq!(documented, fields);
    }

    #[test]
    fn file_then_environment_override() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "jobline.toml",
                "db_pool_size = 3\ntimezone = \"Europe/Prague\"\n[queues.images]\nworkers = 9\n",
            )?;
            jail.set_env("JOBLINE_DB_POOL_SIZE", "5");
            jail.set_env("JOBLINE_QUEUES__SNAPSHOTS__MAX_RUN_TIME", "2m");
            jail.set_env("JOBLINE_WEBHOOK_RETRY_SCHEDULE", "1s,2m");
            let c = Config::load(None).unwrap();
            assert_eq!(c.db_pool_size, 5);
            assert_eq!(c.timezone, "Europe/Prague".parse().unwrap());
            let snapshots = &c.queues["snapshots"];
            assert_eq!(snapshots.max_run_time, Some(Duration::from_secs(120)));
            assert_eq!(snapshots.workers, None);
            assert_eq!(c.queues["images"].workers, Some(9));
            assert_eq!(
                c.webhook_retry_schedule,
                vec![Duration::from_secs(1), Duration::from_secs(120)]
            );
            Ok(())
        });
    }

    #[test]
    fn invalid_values_name_their_key() {
        Jail::expect_with(|jail| {
            jail.set_env("JOBLINE_LEASE", "soon");
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("lease"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("JOBLINE_QUEUES__IMAGES__MAX_WORKERS", "many");
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("queues.images.max_workers"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("JOBLINE_DATABASE_URL", "mysql://x");
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("database_url"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("JOBLINE_IMAGE_DOWNLOAD_CONCURRENCY", "0");
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("image_download_concurrency"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("JOBLINE_IMAGE_DOWNLOAD_TIMEOUT", "0s");
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("image_download_timeout"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("JOBLINE_OUTBOUND_PROXY", "socks5://proxy:1080");
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("outbound_proxy"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("JOBLINE_WAKE_SIGNAL_INTERVAL", "2s");
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("wake_signal_interval"), "{e}");
            jail.set_env("JOBLINE_WAKE_SIGNAL_INTERVAL", "0s");
            let c = Config::load(None).unwrap();
            assert_eq!(c.wake_signal_interval, Duration::ZERO);
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("JOBLINE_BODY_READ_TIMEOUT", "0s");
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("body_read_timeout"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("JOBLINE_TIMEZONE", "Mars/Base");
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("timezone"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("jobline.toml", "bind = \"127.0.0.1:8080\"\nlease = \n")?;
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("TOML file") && e.contains("jobline.toml"), "{e}");
            assert!(e.contains("line 2"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("jobline.toml", "database_url = \"mysql://x\"\n")?;
            let e = Config::load(None).unwrap_err();
            assert!(e.contains("`database_url`"), "{e}");
            assert!(e.contains("\"mysql://x\""), "value: {e}");
            assert!(e.contains("jobline.toml"), "source: {e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("JOBLINE_DB_POOL_SIZE", "0");
            let e = Config::load(None).unwrap_err();
            assert!(
                e.contains("`db_pool_size` = 0 (`JOBLINE_` environment"),
                "{e}"
            );
            Ok(())
        });
        Jail::expect_with(|_| {
            let e = Config::load(Some(Path::new("/nonexistent/jobline.toml"))).unwrap_err();
            assert!(e.contains("does not exist"), "{e}");
            Ok(())
        });
    }
}
