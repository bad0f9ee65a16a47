//! Settings of the job workers, declared once for `serve`, `worker` and `demo`.

/// Settings of the job workers (`deskgraph worker`, and `deskgraph serve` unless `DESKGRAPH_WORKERS=0`).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    /// Jobs one process runs at a time; `serve` runs no workers when 0.
    #[arg(long, env = "DESKGRAPH_WORKERS", default_value_t = 4)]
    pub workers: usize,

    /// Seconds a claimed job is leased for; heartbeats renew it every third of that. A job whose worker
    /// stops heartbeating is run again by another worker once its lease expires.
    #[arg(long, env = "DESKGRAPH_JOB_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,

    /// Milliseconds between polls for runnable jobs when no notification arrives.
    #[arg(long, env = "DESKGRAPH_JOB_POLL_MS", default_value_t = 2_000)]
    pub poll_ms: u64,

    /// First retry delay in milliseconds; each later retry doubles it (with jitter).
    #[arg(long, env = "DESKGRAPH_JOB_BACKOFF_BASE_MS", default_value_t = 2_000)]
    pub backoff_base_ms: u64,

    /// Longest retry delay, in seconds.
    #[arg(long, env = "DESKGRAPH_JOB_BACKOFF_MAX_SECS", default_value_t = 600)]
    pub backoff_max_secs: u64,

    /// Attempts an AI job gets before it is discarded (recorded on the job when it is enqueued, so it
    /// is the setting of the server that enqueues: `serve` and `demo`).
    #[arg(long, env = "DESKGRAPH_JOB_MAX_ATTEMPTS", default_value_t = super::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: i32,

    /// Hours finished (completed or discarded) jobs are kept before they are deleted.
    #[arg(long, env = "DESKGRAPH_JOB_RETENTION_HOURS", default_value_t = 72)]
    pub retention_hours: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            lease_secs: 30,
            poll_ms: 2_000,
            backoff_base_ms: 2_000,
            backoff_max_secs: 600,
            max_attempts: super::DEFAULT_MAX_ATTEMPTS,
            retention_hours: 72,
        }
    }
}
