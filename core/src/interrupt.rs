//! Graceful interruption: the first Ctrl-C (SIGINT) or SIGTERM asks the training loop to stop
//! after the current step with a checkpoint, leaving the run resumable; a second one exits at
//! once.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler; call once, from the binary.
pub fn install() {
    let result = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping after this step with a checkpoint (interrupt again to exit now)");
    });
    if let Err(e) = result {
        tracing::warn!("cannot install the interrupt handler: {e}");
    }
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
