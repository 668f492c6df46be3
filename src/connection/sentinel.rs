//! Master lookup through Redis Sentinel, done again at every (re)connection so a failover
//! is followed.

use super::config::{ConnectionOptions, NodeAddr};
use redis::{AsyncConnectionConfig, ConnectionInfo, RedisError, RedisResult};
use std::time::Duration;

/// Bounds on each sentinel's answer (the connect one unless the user's client sets its own), so
/// one that hangs (host down, packets dropped) is skipped for the next one instead of holding
/// every (re)connection for minutes.
const SENTINEL_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const SENTINEL_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks each sentinel in turn for the address of the monitored master.
pub async fn resolve_master(opts: &ConnectionOptions) -> RedisResult<ConnectionInfo> {
    let master_name = opts.sentinel_master.clone().unwrap_or_default();
    let sentinel_opts = ConnectionOptions {
        username: opts.sentinel_username.clone(),
        password: opts.sentinel_password.clone(),
        db: None,
        sentinel_master: None,
        ..opts.clone()
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(
            opts.connect_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(SENTINEL_CONNECT_TIMEOUT),
        ))
        .set_response_timeout(Some(SENTINEL_RESPONSE_TIMEOUT));
    let mut last_error = None;
    for info in sentinel_opts.connection_infos().map_err(config_error)? {
        let attempt = async {
            let client = redis::Client::open(info)?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&master_name)
                .query_async(&mut conn)
                .await?;
            Ok::<_, RedisError>(addr)
        };
        match attempt.await {
            Ok(Some((host, port))) => {
                let master = ConnectionOptions {
                    nodes: vec![NodeAddr { host, port }],
                    url: None,
                    ..opts.clone()
                };
                let infos = master.connection_infos().map_err(config_error)?;
                return infos
                    .into_iter()
                    .next()
                    .ok_or_else(|| config_error("no master"));
            }
            Ok(None) => last_error = Some(config_error(format!("unknown master {master_name}"))),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| config_error("no sentinel configured")))
}

fn config_error(e: impl ToString) -> RedisError {
    RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "sentinel",
        e.to_string(),
    ))
}
