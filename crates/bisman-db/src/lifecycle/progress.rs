//! Progress reporting for long work, without tying the library to a terminal.

/// Receives progress of a long operation. The CLI draws it as a bar with rate
/// and ETA; libraries and tests pass [`NoProgress`].
pub trait Progress: Send + Sync {
    /// A phase starts; `total` units of work when known.
    fn start(&self, phase: &str, total: Option<u64>);
    /// `done` more units finished.
    fn advance(&self, done: u64);
    /// The phase ended.
    fn finish(&self);
    /// A line worth telling the operator.
    fn note(&self, line: &str);
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
    fn note(&self, _: &str) {}
}
