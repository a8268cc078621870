//! Logging and tracing: tracing to stderr (text for people, JSON for log pipelines) and,
//! when an endpoint is configured, spans exported over OTLP/gRPC.
use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where and how much to export.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// An OTLP/gRPC collector, e.g. http://otel-collector:4317.
    pub endpoint: String,
    /// Share of new traces to sample (0.0 to 1.0). A caller's sampled `traceparent` is
    /// always followed, so a trace started upstream stays whole.
    pub sample_ratio: f64,
}

/// Whether spans are exported. Without an exporter the per-call span is created at DEBUG
/// level, so at the default INFO it costs nothing on the hot path (measured: the INFO span
/// through the fmt layer took a quarter of a warm Authorize's throughput).
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The installed exporter, if any: flush it before the process exits.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans gathered so far (tests wait on this; the batch is otherwise sent every few seconds).
    pub async fn flush(&self) {
        if let Some(provider) = self.provider.clone() {
            // The SDK blocks while the exporter works on the runtime: keep it off the workers.
            let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
            if let Ok(Err(e)) = flushed {
                tracing::warn!(error = %e, "spans not exported");
            }
        }
    }

    /// Flushes and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = stopped {
                tracing::warn!(error = %e, "span exporter did not shut down cleanly");
            }
        }
    }
}

/// Installs the global subscriber, exporting spans when `otlp` is set. `RUST_LOG` overrides
/// `default_level`. Must run inside a Tokio runtime when `otlp` is set: the OTLP/gRPC client
/// is built on it.
pub fn init(
    format: LogFormat,
    default_level: &str,
    otlp: Option<&OtlpSettings>,
) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ));
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let provider = otlp.map(tracer_provider).transpose()?;
    // Only this crate's spans are exported (one per call, from `layers`): the database
    // driver's, hyper's and the exporter's own stay in the logs, if anywhere.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("api-tokens"))
            .with_filter(Targets::new().with_target("api_tokens", tracing::Level::INFO))
    });
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    // A second init (tests start many servers in one process) keeps the first subscriber.
    if result.is_err()
        && let Some(provider) = &provider
    {
        let _ = provider.shutdown();
        return Ok(Telemetry::default());
    }
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    Ok(Telemetry { provider })
}

/// Whether log lines are coloured: only for a person at a terminal, so a log written to a
/// file or a pipe (`serve 2> file`, a collector, the approval bot's log) carries no escape
/// codes; and never when `NO_COLOR` is set to anything but the empty string (no-color.org).
fn colour(terminal: bool, no_color: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

/// An error and its causes on one line, `outer: inner: innermost`: how errors are logged,
/// since a log field shows only what it is given.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // An error that repeats its cause's text in its own adds nothing by printing it again.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn tracer_provider(settings: &OtlpSettings) -> anyhow::Result<SdkTracerProvider> {
    if !(0.0..=1.0).contains(&settings.sample_ratio) {
        anyhow::bail!(
            "--otlp-sample-ratio must be between 0.0 and 1.0, not {}",
            settings.sample_ratio
        );
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(settings.endpoint.clone())
        .build()
        .with_context(|| format!("cannot set up OTLP export to {}", settings.endpoint))?;
    let service_name =
        std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "api-tokens".to_owned());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_ratio,
        ))))
        .with_resource(Resource::builder().with_service_name(service_name).build())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsString::new())));
        assert!(!colour(true, Some(OsString::from("1"))));
        assert!(!colour(false, None));
    }
}
