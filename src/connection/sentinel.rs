//! Master lookup through Redis Sentinel, done again at every (re)connection so a failover
//! is followed.

use super::config::{ConnectionOptions, NodeAddr};
use redis::{ConnectionInfo, RedisError, RedisResult};

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
    let mut last_error = None;
    for info in sentinel_opts.connection_infos().map_err(config_error)? {
        let attempt = async {
            let client = redis::Client::open(info)?;
            let mut conn = client.get_multiplexed_async_connection().await?;
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
