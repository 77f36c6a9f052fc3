//! Standard output that its reader may close (`edge classify DIR | head`): a write then fails
//! with [`ReaderGone`], and the programs end quietly with success, as Unix tools do. Any other
//! broken pipe (a socket, a child process) stays an error.

use std::io::{self, Write};

#[derive(Debug, thiserror::Error)]
#[error("standard output was closed by its reader")]
pub struct ReaderGone;

/// A writer whose broken pipe is [`ReaderGone`].
pub struct Guarded<W: Write>(pub W);

/// Standard output, guarded.
pub fn guarded() -> Guarded<io::Stdout> {
    Guarded(io::stdout())
}

fn gone(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe { io::Error::new(io::ErrorKind::BrokenPipe, ReaderGone) } else { e }
}

impl<W: Write> Write for Guarded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(gone)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(gone)
    }
}

/// Whether `e` came of standard output's reader having gone.
pub fn reader_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<ReaderGone>()
            || cause.downcast_ref::<io::Error>().and_then(|io| io.get_ref()).is_some_and(|inner| inner.is::<ReaderGone>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn only_a_guarded_writers_broken_pipe_is_its_reader_gone() {
        let e = anyhow::Error::from(writeln!(Guarded(Closed), "x").unwrap_err()).context("printing");
        assert!(reader_gone(&e), "{e:#}");
        let socket = anyhow::Error::from(writeln!(Closed, "x").unwrap_err());
        assert!(!reader_gone(&socket), "a broken pipe elsewhere is an error");
    }
}
