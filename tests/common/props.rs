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
