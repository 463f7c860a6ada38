//! Graceful interruption: while a training loop runs, the first Ctrl-C (SIGINT) or SIGTERM asks
//! it to stop after the current step with a checkpoint, leaving the run resumable, and a second
//! one exits at once. Anywhere else (reading files, generating a survey, importing data, a
//! listing) the first signal exits at once: nothing would look at the request, so deferring it
//! would only make the command impossible to stop with one signal.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
/// How many loops are running that look at [`requested`] after each step.
static LISTENING: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler; call once, from the binary.
pub fn install() {
    let result = ctrlc::set_handler(|| {
        if LISTENING.load(Ordering::SeqCst) == 0 {
            eprintln!("\ninterrupted");
            std::process::exit(130);
        }
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

/// Held by a loop that checks [`requested`] after every step: while one is alive, the first
/// signal is a stop request instead of an exit.
#[derive(Debug)]
pub struct Listening(());

/// Starts listening (see [`Listening`]).
pub fn listen() -> Listening {
    LISTENING.fetch_add(1, Ordering::SeqCst);
    Listening(())
}

impl Drop for Listening {
    fn drop(&mut self) {
        LISTENING.fetch_sub(1, Ordering::SeqCst);
    }
}
