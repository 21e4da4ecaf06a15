//! Ctrl-C and SIGTERM: the first asks every loop to finish cleanly (flush,
//! commit, leave the group); a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    requested: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    /// Installs the signal handlers; must run inside the tokio runtime.
    pub fn install() -> Self {
        let shutdown = Self::default();
        let handle = shutdown.clone();
        tokio::spawn(async move {
            let mut signals = 0;
            loop {
                wait_for_signal().await;
                signals += 1;
                if signals > 1 {
                    use std::io::Write;
                    let _ = writeln!(
                        std::io::stderr(),
                        "alertstream: interrupted again, exiting now"
                    );
                    std::process::exit(130);
                }
                tracing::info!("interrupted: finishing cleanly (interrupt again to exit at once)");
                handle.request();
            }
        });
        shutdown
    }

    /// Asks everything watching this to stop.
    pub fn request(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    pub fn requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Resolves once a stop has been requested.
    pub async fn wait(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.requested() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
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
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
