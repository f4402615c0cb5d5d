//! Password hashing with Argon2id (the `argon2` crate's defaults, which follow
//! OWASP's recommendation). Only PHC strings are stored; never the password.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Hashes `password` into a PHC string.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the PHC string `stored`; a malformed stored
/// hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Hashes on the Argon2 threads (Argon2 takes tens of milliseconds).
pub async fn hash_blocking(password: String) -> anyhow::Result<String> {
    on_argon2_thread(move || hash(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// Verifies on the Argon2 threads. Without a stored hash (unknown account)
/// it still spends the time of one verification, so that response times do
/// not tell which accounts exist, and answers false.
pub async fn verify_blocking(password: String, stored: Option<String>) -> bool {
    on_argon2_thread(move || match stored {
        Some(h) => verify(&password, &h),
        None => {
            let _ = verify(&password, dummy_hash());
            false
        }
    })
    .await
    .unwrap_or(false)
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on one of a few threads kept for Argon2 (as many as CPUs, at
/// most 4). Each hash allocates 19 MiB; on tokio's blocking pool any of
/// dozens of threads ran them, and glibc kept ~57 MiB in each thread's
/// arena afterwards: a burst of concurrent logins took a process from 20 MiB
/// to 1 GiB for good. A fixed set of threads bounds that memory, and the CPU
/// a login flood can take from the rest of the service.
async fn on_argon2_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    static QUEUE: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an Argon2 thread");
            }
        }
        std::sync::Mutex::new(tx)
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(result);
    });
    queue
        .lock()
        .map_err(|_| anyhow::anyhow!("the Argon2 queue is poisoned"))?
        .send(job)
        .map_err(|_| anyhow::anyhow!("no Argon2 thread is running"))?;
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(anyhow::anyhow!("Argon2 panicked")),
        Err(_) => Err(anyhow::anyhow!("the Argon2 thread stopped")),
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("bisman: no such account").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let h = super::hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong", &h));
        assert!(!super::verify("x", "not a hash"));
    }
}
