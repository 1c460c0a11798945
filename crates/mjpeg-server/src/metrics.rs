//! `/metrics`: every stream's counters in the Prometheus (OpenMetrics) text
//! format, with [`prometheus_client`].
//!
//! Nothing is counted twice: the counters live where they already are (the
//! hub's atomics and each viewer's [`ClientRecord`](crate::hub::ClientRecord))
//! and a [`Collector`] reads them at scrape time, so the path of a frame
//! pays nothing for metrics. Each series has a `stream` label.
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `mjpeg_frames_in_total` | counter | frames published |
//! | `mjpeg_frames_sent_total` | counter | parts sent to viewers (re-sends included) |
//! | `mjpeg_sent_bytes_total` | counter | bytes of those parts |
//! | `mjpeg_clients` | gauge | viewers connected now |
//! | `mjpeg_frames_skipped_total` | counter | frames viewers never got because they were slower than the source (or capped by `?fps=`) |
//! | `mjpeg_frames_rejected_total` | counter | frames refused (corrupt, not an image, too large, …) |
//! | `mjpeg_source_errors_total` | counter | source errors: a lost or refused upstream, a source that failed |
//! | `mjpeg_upstream_reconnects_total` | counter | reconnect attempts of a relay after an error |
//! | `mjpeg_refusals_total` | counter | connections and requests turned away, by `reason` (`connections`, `connections_per_address`, `clients_per_stream`, `created_streams`, `no_credentials`, `wrong_credentials`, `forbidden`, `frame_too_large`, `too_many_pixels`, `header_timeout`, `push_idle`, `header_too_large`) |
//!
//! An app that has its own [`Registry`] registers a [`StreamsCollector`] in
//! it instead of serving this route.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::hub::{HubCounters, Streams, VariantStats};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reads every stream's counters at each scrape.
#[derive(Clone)]
pub struct StreamsCollector {
    streams: Streams,
}

impl StreamsCollector {
    /// A collector of `streams`' counters, including streams added later.
    pub fn new(streams: Streams) -> StreamsCollector {
        StreamsCollector { streams }
    }
}

impl std::fmt::Debug for StreamsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsCollector").finish_non_exhaustive()
    }
}

/// One metric: name (before the prefix and suffixes), help, unit, and how
/// to read it from a stream's counters.
struct Metric {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    gauge: bool,
    value: fn(&HubCounters) -> u64,
}

const METRICS: &[Metric] = &[
    Metric {
        name: "frames_in",
        help: "Frames published.",
        unit: None,
        gauge: false,
        value: |c| c.frames_published,
    },
    Metric {
        name: "frames_sent",
        help: "Parts sent to viewers, re-sends included.",
        unit: None,
        gauge: false,
        value: |c| c.frames_sent,
    },
    Metric {
        name: "sent",
        help: "Bytes of parts sent to viewers.",
        unit: Some(Unit::Bytes),
        gauge: false,
        value: |c| c.bytes_sent,
    },
    Metric {
        name: "clients",
        help: "Viewers connected now.",
        unit: None,
        gauge: true,
        value: |c| c.clients as u64,
    },
    Metric {
        name: "frames_skipped",
        help:
            "Frames viewers never got because they were slower than the source or capped by ?fps=.",
        unit: None,
        gauge: false,
        value: |c| c.frames_skipped,
    },
    Metric {
        name: "frames_rejected",
        help: "Frames refused: corrupt, not an image, too large.",
        unit: None,
        gauge: false,
        value: |c| c.frames_rejected,
    },
    Metric {
        name: "source_errors",
        help: "Errors of the stream's source: a lost or refused upstream, a failed source.",
        unit: None,
        gauge: false,
        value: |c| c.source_errors,
    },
    Metric {
        name: "upstream_reconnects",
        help: "Reconnect attempts to an upstream after an error.",
        unit: None,
        gauge: false,
        value: |c| c.upstream_reconnects,
    },
];

impl Collector for StreamsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters: Vec<(String, HubCounters)> = self
            .streams
            .all()
            .iter()
            .map(|h| (h.name().to_string(), h.counters()))
            .collect();
        let mut family = encoder.encode_descriptor(
            "refusals",
            "Connections and requests turned away, by reason.",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (reason, count) in self.streams.refusals().counts() {
            let labels = [("reason", reason.label())];
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        self.encode_variants(&mut encoder)?;
        for m in METRICS {
            let metric_type = if m.gauge {
                ConstGauge::new(0i64).metric_type()
            } else {
                ConstCounter::new(0u64).metric_type()
            };
            let mut family =
                encoder.encode_descriptor(m.name, m.help, m.unit.as_ref(), metric_type)?;
            for (name, c) in &counters {
                let labels = [("stream", name.as_str())];
                let v = (m.value)(c);
                let series = family.encode_family(&labels)?;
                if m.gauge {
                    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(series)?;
                } else {
                    ConstCounter::new(v).encode(series)?;
                }
            }
        }
        Ok(())
    }
}

impl StreamsCollector {
    /// Each stream's variants being made now (`variants`), and for each
    /// variant, labelled `stream` and `variant` (`width=320`): its viewers,
    /// the frames made and those that failed since it started.
    fn encode_variants(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let hubs = self.streams.all();
        let variants: Vec<(String, Vec<VariantStats>)> = hubs
            .iter()
            .map(|h| (h.name().to_string(), h.variants()))
            .collect();
        let mut family = encoder.encode_descriptor(
            "variants",
            "Variants (?width=, ?height=, ?quality=) being made now.",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (stream, list) in &variants {
            let n = i64::try_from(list.len()).unwrap_or(i64::MAX);
            ConstGauge::new(n).encode(family.encode_family(&[("stream", stream.as_str())])?)?;
        }
        type Value = fn(&VariantStats) -> u64;
        let per_variant: [(&str, &str, bool, Value); 3] = [
            ("variant_clients", "Viewers of a variant now.", true, |v| {
                v.viewers as u64
            }),
            (
                "variant_frames_made",
                "Frames made of a variant.",
                false,
                |v| v.frames_made,
            ),
            (
                "variant_frames_failed",
                "Source frames a variant could not be made of.",
                false,
                |v| v.frames_failed,
            ),
        ];
        for (name, help, gauge, value) in per_variant {
            let metric_type = if gauge {
                ConstGauge::new(0i64).metric_type()
            } else {
                ConstCounter::new(0u64).metric_type()
            };
            let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
            for (stream, list) in &variants {
                for v in list {
                    let labels = [("stream", stream.as_str()), ("variant", v.variant.as_str())];
                    let series = family.encode_family(&labels)?;
                    if gauge {
                        ConstGauge::new(i64::try_from(value(v)).unwrap_or(i64::MAX))
                            .encode(series)?;
                    } else {
                        ConstCounter::new(value(v)).encode(series)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A registry with the counters of `streams`, names prefixed `mjpeg_`.
pub fn registry(streams: &Streams) -> Registry {
    let mut registry = Registry::with_prefix("mjpeg");
    registry.register_collector(Box::new(StreamsCollector::new(streams.clone())));
    registry
}

/// The registry's metrics in the OpenMetrics text format (which Prometheus
/// reads; serve it with [`CONTENT_TYPE`]).
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_has_every_metric() {
        let streams = Streams::new();
        let hub = streams.add("cam").unwrap();
        streams.add("other").unwrap();
        hub.publish_jpeg(crate::test_data::corpus("jpeg_5k.jpg"))
            .unwrap();
        let _sub = hub.subscribe();
        let text = render(&registry(&streams));
        assert!(text.contains("# TYPE mjpeg_frames_in counter\n"), "{text}");
        assert!(
            text.contains("mjpeg_frames_in_total{stream=\"cam\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE mjpeg_clients gauge\n"), "{text}");
        assert!(text.contains("mjpeg_clients{stream=\"cam\"} 1\n"), "{text}");
        assert!(
            text.contains("mjpeg_clients{stream=\"other\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("# UNIT mjpeg_sent_bytes bytes\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
