//! A progress line on stderr for long scans, shown only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use palisade_core::integrity::Progress;

#[derive(Debug)]
pub struct ProgressLine {
    counters: Arc<Progress>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts redrawing the line every 200 ms when stderr is a terminal.
    pub fn start() -> Self {
        let counters = Arc::new(Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let (counters, stop) = (counters.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let entries = counters.entries.load(Ordering::Relaxed);
                    let megabytes = counters.bytes_hashed.load(Ordering::Relaxed) / (1 << 20);
                    eprint!("\r\x1b[K{entries} entries, {megabytes} MiB hashed");
                    let _ = std::io::stderr().flush();
                }
                eprint!("\r\x1b[K");
            })
        });
        Self { counters, stop, thread }
    }

    pub fn counters(&self) -> Arc<Progress> {
        self.counters.clone()
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
