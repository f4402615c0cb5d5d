//! From a Rust future to a JavaScript answer.
//!
//! The cache's work runs on the package's own Tokio runtime (two worker
//! threads named `bisman-cache`), never on Node's event loop. Each call's
//! future is polled once, right away, on the calling JavaScript thread
//! inside that runtime's context: a near-cache hit completes there (it
//! awaits nothing), so its answer goes back to JavaScript as a plain value
//! with no thread hop. A future that is not done by then (it waits for
//! Redis or PostgreSQL) moves to the runtime, and its promise is settled on
//! Node's event loop through a thread-safe function.
//!
//! Polling once with a no-op waker and then handing the future to the
//! runtime is sound: a future must register the waker of its latest poll,
//! and the runtime polls it again at once with its own.
//!
//! A panic anywhere in a call becomes a `Failure` with code `INTERNAL`:
//! the call fails, the process does not.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use futures::FutureExt;
use napi::bindgen_prelude::{ToNapiValue, TypeName, ValueType};
use napi::{sys, Env};
use serde_json::Value;
use tokio::runtime::Runtime;

use crate::failure::{Code, Failure};

/// What a call ends with.
pub type Outcome = Result<Value, Failure>;

type Work = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// The package's runtime, made on first use.
pub fn runtime() -> Result<&'static Runtime, Failure> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("bisman-cache")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            Failure::new(
                Code::Internal,
                format!("cannot start the cache runtime: {e}"),
            )
        })
}

/// A JavaScript value made by the bridge: a plain answer or a promise.
pub struct Js(sys::napi_value);

impl TypeName for Js {
    fn type_name() -> &'static str {
        "unknown"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for Js {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        Ok(val.0)
    }
}

/// Converts an answer to JavaScript.
fn to_js(env: &Env, value: Value) -> napi::Result<Js> {
    // SAFETY: `env` is the live environment of the current call.
    unsafe { Value::to_napi_value(env.raw(), value) }.map(Js)
}

/// Runs a synchronous step (argument checks) with panics caught.
pub fn guard<T>(step: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    std::panic::catch_unwind(AssertUnwindSafe(step)).unwrap_or_else(|p| Err(Failure::panic(p)))
}

/// Answers a call whose answer is known now: the value, or a thrown error
/// (the JavaScript wrapper turns it into a rejected promise).
pub fn now(env: &Env, outcome: Outcome) -> napi::Result<Js> {
    match outcome {
        Ok(v) => to_js(env, v),
        Err(f) => Err(f.into_napi(env)),
    }
}

/// Runs `work`: its value when it completes on its first poll, otherwise a
/// promise settled on Node's event loop once the runtime finished it.
pub fn settle<F>(env: &Env, work: F) -> napi::Result<Js>
where
    F: Future<Output = Outcome> + Send + 'static,
{
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(f) => return now(env, Err(f)),
    };
    let mut work: Work = Box::pin(
        AssertUnwindSafe(work)
            .catch_unwind()
            .map(|r| r.unwrap_or_else(|p| Err(Failure::panic(p)))),
    );
    let first = {
        let _inside = rt.enter();
        work.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    };
    match first {
        Poll::Ready(outcome) => now(env, outcome),
        Poll::Pending => {
            let (deferred, promise) = env.create_deferred::<Value, _>()?;
            rt.spawn(async move {
                let outcome = work.await;
                deferred.resolve(move |env| outcome.map_err(|f| f.into_napi(&env)));
            });
            // SAFETY: `promise` belongs to `env`, the current call's environment.
            unsafe { napi::bindgen_prelude::Object::to_napi_value(env.raw(), promise) }.map(Js)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_an_internal_failure() {
        let f = guard::<()>(|| panic!("in a check")).unwrap_err();
        assert_eq!(f.code, Code::Internal);
        assert!(f.message.contains("in a check"));
        assert_eq!(guard(|| Ok(7)).unwrap(), 7);
    }

    #[test]
    fn the_runtime_is_shared_and_runs_work() {
        let rt = runtime().unwrap();
        assert!(std::ptr::eq(rt, runtime().unwrap()));
        assert_eq!(rt.block_on(async { 1 + 1 }), 2);
    }
}
