//! The standalone server: turns a parsed [`Cli`] (with its config file) into
//! running streams and listening sockets, and stops on SIGINT or SIGTERM.

use anyhow::Context;
use std::time::Duration;

use crate::config::{seconds_or_off, Cli, Settings, StreamArg};
use crate::convert::ConvertOptions;
use crate::http::HttpOptions;
use crate::hub::Streams;
use crate::server::{ListenAddr, Server, ServerOptions};
use crate::source::SourceOptions;

/// Runs the server described by `cli` (its config file and flags) until a
/// shutdown signal.
///
/// Every problem that can be found before serving (bad folders, duplicate
/// names, a port in use) is returned as an error before anything is served.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::resolve(&cli)?;
    serve(settings).await
}

/// `--check-config`: checks the settings as [`run`] would before serving
/// (streams and their sources included, but without listening) and returns
/// the effective configuration as TOML.
pub async fn check_config(cli: &Cli) -> anyhow::Result<String> {
    let settings = Settings::resolve(cli)?;
    check_streams(&settings.streams).await?;
    Ok(settings.to_toml())
}

/// Checks what can be checked of the streams without serving them.
async fn check_streams(streams: &[StreamArg]) -> anyhow::Result<()> {
    if streams.iter().filter(|a| a.source.reads_stdin()).count() > 1 {
        anyhow::bail!("only one stream can read standard input");
    }
    let names = Streams::new();
    for arg in streams {
        names.add(&arg.name)?;
        arg.source
            .check()
            .await
            .with_context(|| format!("stream {:?}", arg.name))?;
    }
    Ok(())
}

/// Runs the server with resolved `settings` until a shutdown signal.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    check_streams(&settings.streams).await?;
    raise_fd_limit(settings.max_connections as u64);
    let streams = Streams::new();
    let mut sources = Vec::new();
    for arg in settings.streams {
        let hub = streams.add(&arg.name)?;
        sources.push((hub, arg.source));
    }

    let convert = ConvertOptions {
        quality: settings.jpeg_quality,
        max_width: settings.max_width,
        max_height: settings.max_height,
    };
    let opts = ServerOptions {
        max_connections: settings.max_connections as usize,
        write_timeout: seconds_or_off(settings.write_timeout),
        http: HttpOptions {
            resend_after: seconds_or_off(settings.resend_after),
            max_frame_bytes: settings.max_frame_size,
            allow_create: settings.allow_create,
            convert: convert.clone(),
        },
        ..ServerOptions::default()
    };
    let server = Server::bind_all(&settings.listen, streams.clone(), opts).await?;
    let shutdown = server.shutdown_token();
    let source_opts = SourceOptions {
        interval: Duration::from_secs_f64(1.0 / settings.fps),
        convert,
        max_frame: settings.max_frame_size,
    };
    for (hub, spec) in sources {
        tracing::info!(stream = hub.name(), "source {spec}");
        spec.spawn(hub, source_opts.clone(), shutdown.clone());
    }

    for addr in server.local_addrs() {
        match addr {
            ListenAddr::Tcp(addr) => {
                tracing::info!("serving http://{addr}/");
                for hub in streams.all() {
                    tracing::info!("  http://{addr}/stream/{}", hub.name());
                }
            }
            ListenAddr::Unix(path) => {
                tracing::info!("serving HTTP on unix:{}", path.display());
            }
        }
    }

    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            // Cancel first: nothing, not even a failing log write, may stand
            // between a signal and the shutdown.
            shutdown.cancel();
            tracing::info!("shutting down");
        }
    });
    server.run().await.context("server failed")?;
    Ok(())
}

/// Every viewer holds a socket, and the usual soft limit of 1024 open files
/// would refuse viewers long before `--max-connections`. Raise the soft
/// limit as far as the hard limit allows (as nginx's
/// `worker_rlimit_nofile` does) and say so if that is still short.
fn raise_fd_limit(max_connections: u64) {
    // Sockets plus a margin for files, pipes and the listener.
    let wanted = max_connections + 64;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit < wanted => tracing::warn!(
            "the open-file limit is {limit}, so fewer than --max-connections {max_connections} viewers fit; raise it with `ulimit -n` (hard limit) or lower --max-connections"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
