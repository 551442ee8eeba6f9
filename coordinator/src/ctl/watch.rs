//! `c2c ctl watch`: redraws the progress from `WatchProgress` in place (plain ANSI
//! escapes), an overall line plus a bar per worker, until Ctrl-C or COMMITTED. When
//! stdout is not a terminal it prints each update instead, for logs and pipes.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use c2c_api::v1::{ProgressReply, WatchProgressRequest};

use super::render::{overall_line, worker_line};
use super::{unary, CtlClient, CtlError, CALL_TIMEOUT};

const BAR_WIDTH: usize = 24;

pub async fn run(client: &mut CtlClient, interval_ms: u32) -> Result<(), CtlError> {
    let mut stream = unary(
        "WatchProgress",
        client.watch_progress(WatchProgressRequest { interval_ms }),
    )
    .await?;
    // A silent server (half-open connection) is reported rather than waited on forever.
    let silence_limit = Duration::from_millis(u64::from(interval_ms.max(100))) + CALL_TIMEOUT;
    let mut screen = Screen::new(std::io::stdout().is_terminal());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let next = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            next = tokio::time::timeout(silence_limit, stream.message()) => next,
        };
        let reply = next
            .map_err(|_| CtlError::Timeout {
                call: "WatchProgress",
                seconds: silence_limit.as_secs(),
            })?
            .map_err(|status| CtlError::from_status("WatchProgress", status))?
            .ok_or_else(|| {
                CtlError::Stream("the server closed the progress stream (is c2c stopping?)".into())
            })?;
        screen.draw(&frame(&reply));
        if reply.state == "COMMITTED" {
            return Ok(());
        }
    }
}

/// The overall line, then one indented line per worker (none for `c2c run`, whose
/// single in-process worker is the overall line).
pub fn frame(reply: &ProgressReply) -> Vec<String> {
    let mut lines = vec![overall_line(reply, BAR_WIDTH)];
    lines.extend(
        reply
            .workers
            .iter()
            .map(|worker| format!("  {}", worker_line(worker, BAR_WIDTH))),
    );
    lines
}

/// Redraws a frame in place on a terminal. Line wrapping is switched off while
/// drawing so a long line never takes two rows and breaks the cursor arithmetic.
struct Screen {
    terminal: bool,
    drawn: usize,
}

impl Screen {
    fn new(terminal: bool) -> Screen {
        if terminal {
            print!("\x1b[?7l");
        }
        Screen { terminal, drawn: 0 }
    }

    fn draw(&mut self, lines: &[String]) {
        let mut out = std::io::stdout().lock();
        if self.terminal && self.drawn > 0 {
            // Back to the first line of the previous frame, and clear everything below.
            let _ = write!(out, "\x1b[{}F\x1b[J", self.drawn);
        }
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        self.drawn = lines.len();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        if self.terminal {
            // Wrapping back on, whatever way the watch ended.
            print!("\x1b[?7h");
            let _ = std::io::stdout().flush();
        }
    }
}
