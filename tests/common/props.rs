//! Property runs against a live server: proptest drives synchronous closures, so each case
//! blocks on the test's runtime from a blocking thread; shrinking works as usual and the server
//! keeps running on the runtime's workers.
use std::future::Future;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Runs `cases` values of `strategy` through `play`; panics with the shrunk failing case.
pub async fn run_cases<S, F, Fut>(cases: u32, strategy: S, play: F)
where
    S: Strategy + Send + 'static,
    F: Fn(S::Value) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, |value| handle.block_on(play(value)))
            .map_err(|failure| failure.to_string())
    })
    .await
    .expect("the property runner");
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// The gRPC codes a property run's calls got, so a run can show it reached the interesting
/// answers and not only refusals.
#[derive(Default)]
pub struct CodeTally(std::sync::Mutex<std::collections::BTreeMap<String, u32>>);

impl CodeTally {
    /// Counts the code of `result` and returns it.
    pub fn count<T>(&self, result: &Result<T, tonic::Status>) -> tonic::Code {
        let code = result
            .as_ref()
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        *self
            .0
            .lock()
            .expect("tally")
            .entry(format!("{code:?}"))
            .or_default() += 1;
        code
    }

    /// Prints the tally and panics unless every code in `expected` was seen.
    pub fn assert_reached(&self, run: &str, expected: &[&str]) {
        let codes = self.0.lock().expect("tally").clone();
        eprintln!(
            "{run}: {} calls, codes: {codes:?}",
            codes.values().sum::<u32>()
        );
        for code in expected {
            assert!(codes.contains_key(*code), "no {code} in {codes:?}");
        }
    }
}
