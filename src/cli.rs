//! The standalone server: turns a parsed [`Cli`] into running streams and a
//! listening server, and stops on SIGINT or SIGTERM.

use anyhow::Context;
use std::time::Duration;

use crate::config::{seconds_or_off, Cli, StreamArg};
use crate::convert::ConvertOptions;
use crate::http::HttpOptions;
use crate::hub::Streams;
use crate::server::{Server, ServerOptions};
use crate::source::{SourceOptions, SourceSpec};

/// Runs the server described by `cli` until a shutdown signal.
///
/// Every problem that can be found before serving (bad folders, duplicate
/// names, a port in use) is returned as an error before anything is served.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let args = if cli.streams.is_empty() && !cli.allow_create {
        vec![StreamArg {
            name: "demo".into(),
            source: SourceSpec::Demo,
        }]
    } else {
        cli.streams
    };

    if args.iter().filter(|a| a.source.reads_stdin()).count() > 1 {
        anyhow::bail!("only one stream can read standard input");
    }
    raise_fd_limit(cli.max_connections as u64);
    let streams = Streams::new();
    let mut sources = Vec::new();
    for arg in args {
        arg.source
            .check()
            .await
            .with_context(|| format!("stream {:?}", arg.name))?;
        let hub = streams.add(&arg.name)?;
        sources.push((hub, arg.source));
    }

    let convert = ConvertOptions {
        quality: cli.jpeg_quality,
        max_width: cli.max_width,
        max_height: cli.max_height,
    };
    let opts = ServerOptions {
        max_connections: cli.max_connections as usize,
        write_timeout: seconds_or_off(cli.write_timeout),
        http: HttpOptions {
            resend_after: seconds_or_off(cli.resend_after),
            max_frame_bytes: cli.max_frame_size,
            allow_create: cli.allow_create,
            convert: convert.clone(),
        },
        ..ServerOptions::default()
    };
    let server = Server::bind(cli.listen, streams.clone(), opts).await?;
    let shutdown = server.shutdown_token();
    let source_opts = SourceOptions {
        interval: Duration::from_secs_f64(1.0 / cli.fps),
        convert,
        max_frame: cli.max_frame_size,
    };
    for (hub, spec) in sources {
        tracing::info!(stream = hub.name(), "source {spec}");
        spec.spawn(hub, source_opts.clone(), shutdown.clone());
    }

    let addr = server.local_addr();
    tracing::info!("serving http://{addr}/");
    for hub in streams.all() {
        tracing::info!("  http://{addr}/stream/{}", hub.name());
    }

    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
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
