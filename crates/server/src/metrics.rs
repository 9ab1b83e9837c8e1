//! `/metrics` through the `prometheus-client` crate (OpenMetrics text). Crest's figures live
//! in its parts (the SIP core's snapshot, the media plane's counters, the ACD center, the
//! IVR, the recorder) and are read at each scrape: every part writes its families to an
//! [`Exposition`], which hands them to the library's encoder. Counters are named here with
//! their `_total`, as they are exported; the encoder adds it back.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The content type of the exposition.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One label set: `(name, value)` pairs.
pub(crate) type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Where the parts write their families during a scrape.
pub(crate) struct Exposition<'a, 'e> {
    enc: &'e mut DescriptorEncoder<'a>,
    error: Option<std::fmt::Error>,
}

impl Exposition<'_, '_> {
    fn family<'s>(
        &'s mut self,
        name: &'s str,
        help: &str,
        kind: MetricType,
    ) -> Option<MetricEncoder<'s>> {
        if self.error.is_some() {
            return None;
        }
        let name = match kind {
            MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        match self.enc.encode_descriptor(name, help, None, kind) {
            Ok(m) => Some(m),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }

    fn keep(&mut self, r: Result<(), std::fmt::Error>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    /// A counter without labels (`name` ends in `_total`).
    pub(crate) fn counter(&mut self, name: &str, help: &str, v: impl EncodeCounterValue) {
        let r = match self.family(name, help, MetricType::Counter) {
            Some(mut m) => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
            None => return,
        };
        self.keep(r);
    }

    /// A gauge without labels.
    pub(crate) fn gauge(&mut self, name: &str, help: &str, v: impl EncodeGaugeValue) {
        let r = match self.family(name, help, MetricType::Gauge) {
            Some(mut m) => m.encode_gauge(&v),
            None => return,
        };
        self.keep(r);
    }

    /// A counter by labels.
    pub(crate) fn counters<'l, V: EncodeCounterValue>(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (Labels<'l>, V)>,
    ) {
        let r = match self.family(name, help, MetricType::Counter) {
            Some(mut m) => rows.into_iter().try_for_each(|(labels, v)| {
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&v, None)
            }),
            None => return,
        };
        self.keep(r);
    }

    /// A gauge by labels.
    pub(crate) fn gauges<'l, V: EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (Labels<'l>, V)>,
    ) {
        let r = match self.family(name, help, MetricType::Gauge) {
            Some(mut m) => rows
                .into_iter()
                .try_for_each(|(labels, v)| m.encode_family(&labels)?.encode_gauge(&v)),
            None => return,
        };
        self.keep(r);
    }

    /// A histogram by labels, from counts already kept: per row the sum, and the number of
    /// observations at most each upper bound (cumulative, as Prometheus reads them), then the
    /// total count (the `+Inf` bucket).
    pub(crate) fn histograms<'l>(
        &mut self,
        name: &str,
        help: &str,
        bounds: &[f64],
        rows: impl IntoIterator<Item = (Labels<'l>, f64, Vec<u64>, u64)>,
    ) {
        let r = match self.family(name, help, MetricType::Histogram) {
            Some(mut m) => rows
                .into_iter()
                .try_for_each(|(labels, sum, at_most, count)| {
                    // The encoder takes each bucket's own count and adds them up again.
                    let mut below = 0;
                    let mut buckets: Vec<(f64, u64)> = bounds
                        .iter()
                        .zip(at_most)
                        .map(|(b, n)| {
                            let own = n.saturating_sub(below);
                            below = below.max(n);
                            (*b, own)
                        })
                        .collect();
                    buckets.push((f64::INFINITY, count.saturating_sub(below)));
                    m.encode_family(&labels)?
                        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
                }),
            None => return,
        };
        self.keep(r);
    }
}

/// What a scrape reads: each part of a running crest that has figures.
pub(crate) trait Source: std::fmt::Debug + Send + Sync + 'static {
    /// Writes the part's families.
    fn expose(&self, out: &mut Exposition<'_, '_>);
}

impl<T: Source> Source for std::sync::Arc<T> {
    fn expose(&self, out: &mut Exposition<'_, '_>) {
        T::expose(self, out);
    }
}

#[derive(Debug)]
struct Sources(Vec<Box<dyn Source>>);

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut out = Exposition {
            enc: &mut encoder,
            error: None,
        };
        for s in &self.0 {
            s.expose(&mut out);
        }
        out.error.map_or(Ok(()), Err)
    }
}

/// The exposition of `sources`, in order.
pub(crate) fn encode(sources: Vec<Box<dyn Source>>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Sources(sources)));
    let mut body = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        tracing::warn!(error = %e, "metrics exposition failed");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl Source for Fixed {
        fn expose(&self, out: &mut Exposition<'_, '_>) {
            out.counter("t_calls_total", "Calls.", 3u64);
            out.gauge("t_active", "Active.", 2i64);
            out.gauges("t_share", "Share.", [(vec![("pool", "a b\"c")], 0.5)]);
            out.histograms(
                "t_wait_seconds",
                "Waits.",
                &[5.0, 20.0],
                [(vec![("queue", "refund")], 42.5, vec![1, 3], 4)],
            );
        }
    }

    #[test]
    fn families_come_out_in_the_openmetrics_text_format() {
        let text = encode(vec![Box::new(Fixed)]);
        for line in [
            "# TYPE t_calls counter",
            "t_calls_total 3",
            "t_active 2",
            "t_share{pool=\"a b\\\"c\"} 0.5",
            "t_wait_seconds_sum{queue=\"refund\"} 42.5",
            "t_wait_seconds_count{queue=\"refund\"} 4",
            "t_wait_seconds_bucket{le=\"5.0\",queue=\"refund\"} 1",
            "t_wait_seconds_bucket{le=\"20.0\",queue=\"refund\"} 3",
            "t_wait_seconds_bucket{le=\"+Inf\",queue=\"refund\"} 4",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
    }
}
