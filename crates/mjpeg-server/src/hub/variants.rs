//! A stream's variants: each a hub of its own, fed by a worker that makes
//! the variant of every newest source frame while someone watches it.
//!
//! The first viewer of a variant (see [`Hub::variant`]) starts its worker;
//! every other viewer of the same variant subscribes to the same hub and
//! shares its frames, as viewers of the stream share the source's. The
//! worker takes the newest source frame, makes the variant on the blocking
//! pool and publishes it with the source frame's timestamp, then takes the
//! newest again: a variant slower than its source skips source frames and
//! never delays the source, its viewers or another variant. When nobody has
//! watched a variant for [`LINGER`], it is forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{lock, Hub};
use crate::variant::{make, Overlay, VariantSpec};

/// How long a variant nobody watches lives on: a viewer reconnecting, or
/// the viewer whose request made it arriving, finds it still warm.
pub const LINGER: Duration = Duration::from_secs(2);

/// At most one warning a minute per stream about frames a variant could
/// not be made of.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// How many of the newest frames' making times the figures cover.
const TIMES_KEPT: usize = 256;

/// The variants of one stream.
#[derive(Default)]
pub(super) struct Variants {
    live: HashMap<VariantSpec, Live>,
    /// Drawn on every frame of the stream ([`Hub::set_overlay`]).
    overlay: Option<Overlay>,
    /// When a frame of this stream last failed to become a variant.
    warned: Option<Instant>,
}

struct Live {
    hub: Hub,
    counters: Arc<Mutex<Counters>>,
    /// When [`Hub::variant`] last handed the hub out: a request that got it
    /// subscribes at once, so a variant handed out within [`LINGER`] is
    /// not forgotten even with no viewer yet.
    handed_out: Instant,
}

#[derive(Default)]
struct Counters {
    made: u64,
    failed: u64,
    /// Making times of the newest frames, microseconds.
    times_us: VecDeque<u32>,
}

/// Why a variant cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariantError {
    /// The stream has as many variants as it may.
    #[error("{}", too_many(stream, *limit, live))]
    TooMany {
        /// The stream.
        stream: String,
        /// The limit.
        limit: usize,
        /// The variants there are, as queries.
        live: String,
    },
}

fn too_many(stream: &str, limit: usize, live: &str) -> String {
    let option = crate::names::option_names().max_variants;
    if limit == 0 {
        format!("this server makes no variants ({option} is 0); ask for stream {stream} itself\n")
    } else {
        format!(
            "stream {stream} has {limit} variants being made, the most it may have ({option}); \
             ask for one of them ({live}) or for the stream itself\n"
        )
    }
}

/// One live variant, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VariantStats {
    /// What it is, as the query that asks for it (`width=320&quality=60`).
    pub variant: String,
    /// Viewers now.
    pub viewers: usize,
    /// Frames made since it started.
    pub frames_made: u64,
    /// Source frames it could not be made of.
    pub frames_failed: u64,
    /// Mean time to make one, milliseconds, over the newest frames.
    pub mean_ms: f64,
    /// 99th percentile of the same, milliseconds.
    pub p99_ms: f64,
}

impl Hub {
    /// The hub of this stream's variant `spec`, started if nobody watches
    /// it yet; subscribe to it as to any hub. A stream has at most `max`
    /// variants at a time. Must be called inside a tokio runtime (the
    /// variant's worker is a task).
    pub fn variant(&self, spec: VariantSpec, max: usize) -> Result<Hub, VariantError> {
        let mut variants = lock(&self.inner.variants);
        if let Some(live) = variants.live.get_mut(&spec) {
            live.handed_out = Instant::now();
            return Ok(live.hub.clone());
        }
        if variants.live.len() >= max {
            let mut live: Vec<String> = variants.live.keys().map(|s| s.to_string()).collect();
            live.sort();
            return Err(VariantError::TooMany {
                stream: self.name().to_string(),
                limit: max,
                live: live.join(", "),
            });
        }
        let live = Live {
            hub: Hub::new(self.name()),
            counters: Arc::default(),
            handed_out: Instant::now(),
        };
        let hub = live.hub.clone();
        tokio::spawn(run(self.clone(), spec, hub.clone(), live.counters.clone()));
        variants.live.insert(spec, live);
        Ok(hub)
    }

    /// Draws `overlay` on every frame of this stream from now on (`None`:
    /// nothing). Viewers of the stream then watch a variant of it: the
    /// source's frames are never sent as they are.
    pub fn set_overlay(&self, overlay: Option<Overlay>) {
        lock(&self.inner.variants).overlay = overlay;
    }

    /// The overlay drawn on this stream's frames, if any.
    pub fn overlay(&self) -> Option<Overlay> {
        lock(&self.inner.variants).overlay.clone()
    }

    /// The variants being made now, by their queries.
    pub fn variants(&self) -> Vec<VariantStats> {
        let variants = lock(&self.inner.variants);
        let mut stats: Vec<VariantStats> = variants
            .live
            .iter()
            .map(|(spec, live)| {
                let c = lock(&live.counters);
                let mut times: Vec<u32> = c.times_us.iter().copied().collect();
                times.sort_unstable();
                let ms = |us: f64| (us / 10.0).round() / 100.0;
                VariantStats {
                    variant: spec.to_string(),
                    viewers: *live.hub.inner.clients.borrow(),
                    frames_made: c.made,
                    frames_failed: c.failed,
                    mean_ms: match times.len() {
                        0 => 0.0,
                        n => ms(times.iter().map(|&t| f64::from(t)).sum::<f64>() / n as f64),
                    },
                    p99_ms: match times.len() {
                        0 => 0.0,
                        n => ms(f64::from(times[(n * 99).div_ceil(100) - 1])),
                    },
                }
            })
            .collect();
        stats.sort_by(|a, b| a.variant.cmp(&b.variant));
        stats
    }

    /// Forgets variant `spec` if nobody watches it and nobody was handed
    /// it lately; returns whether it did.
    fn forget_variant(&self, spec: &VariantSpec) -> bool {
        let mut variants = lock(&self.inner.variants);
        let idle = variants.live.get(spec).is_none_or(|live| {
            *live.hub.inner.clients.borrow() == 0 && live.handed_out.elapsed() >= LINGER
        });
        if idle {
            variants.live.remove(spec);
        }
        idle
    }

    /// Whether a failed variant frame should be logged now.
    fn variant_warning_due(&self) -> bool {
        let mut variants = lock(&self.inner.variants);
        let due = variants.warned.is_none_or(|t| t.elapsed() >= WARN_EVERY);
        if due {
            variants.warned = Some(Instant::now());
        }
        due
    }
}

/// The worker of one variant: makes it of each newest source frame while
/// someone watches, and forgets it once nobody has for [`LINGER`].
async fn run(source: Hub, spec: VariantSpec, hub: Hub, counters: Arc<Mutex<Counters>>) {
    // A viewer of the source like any other, so that sources that run only
    // while someone watches (relays) run for a variant's viewers too.
    let mut frames = source.subscribe();
    let mut clients = hub.watch_clients();
    loop {
        if *clients.borrow_and_update() == 0 {
            let back = tokio::time::timeout(LINGER, clients.wait_for(|n| *n > 0)).await;
            if !matches!(back, Ok(Ok(_))) {
                if source.forget_variant(&spec) {
                    return;
                }
                continue;
            }
        }
        let published = tokio::select! {
            p = frames.next() => p,
            _ = clients.changed() => continue,
        };
        let frame = published.frame().clone();
        let text = match (spec.overlay, source.overlay()) {
            (true, Some(overlay)) => Some(overlay.render(source.name(), published.published())),
            _ => None,
        };
        let started = Instant::now();
        let made = tokio::task::spawn_blocking(move || make(&frame, &spec, text.as_deref())).await;
        match made {
            Ok(Ok(variant)) => {
                let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                {
                    let mut c = lock(&counters);
                    c.made += 1;
                    if c.times_us.len() == TIMES_KEPT {
                        c.times_us.pop_front();
                    }
                    c.times_us.push_back(us);
                }
                // The source frame's time: latency is measured from the
                // source, whatever the variant cost.
                if let Err(e) = hub.publish_at(variant, published.published()) {
                    tracing::warn!(stream = source.name(), variant = %spec, "variant refused: {e}");
                }
            }
            Ok(Err(e)) => failed(&source, &spec, &counters, &e),
            Err(e) => failed(
                &source,
                &spec,
                &counters,
                &format!("the worker failed: {e}"),
            ),
        }
    }
}

/// Counts a source frame the variant could not be made of, and says so at
/// most once a minute per stream.
fn failed(
    source: &Hub,
    spec: &VariantSpec,
    counters: &Mutex<Counters>,
    why: &dyn std::fmt::Display,
) {
    lock(counters).failed += 1;
    if source.variant_warning_due() {
        tracing::warn!(
            stream = source.name(),
            variant = %spec,
            "a frame could not be made into a variant and was skipped (viewers of the stream itself are not affected): {why}"
        );
    }
}
