//! The body of an answer as hyper pulls it: bytes, a file range read on a blocking thread,
//! or chunks from a channel; it holds its connection busy (no idle timer) until written.
//!
//! Owns: reading file bodies (`pread` in 64 KiB chunks, two waiting at most) and ending a
//! short one with an error after its bytes are flushed. Does not own: which body an answer
//! has (`server`), what a stream carries (the handler).

use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;

use crate::http::message::FileBody;
use crate::http::timed_io::BusyGuard;

/// File bodies are read in chunks this large.
const FILE_CHUNK: usize = 64 * 1024;

/// Reads `f` in chunks on a blocking thread into a small channel: at most two chunks wait
/// for a slow client, and the thread ends when the client is gone (the channel closes).
pub(crate) fn read_file(f: FileBody) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let end = f.offset.saturating_add(f.len);
        let mut at = f.offset;
        while at < end {
            let n = usize::try_from(end - at).map_or(FILE_CHUNK, |n| n.min(FILE_CHUNK));
            let mut buf = vec![0; n];
            let item = match f.file.read_at(&mut buf, at) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than its promised length",
                )),
                Ok(k) => {
                    buf.truncate(k);
                    at += k as u64;
                    Ok(Bytes::from(buf))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// An answer's body as hyper pulls it; holds the connection busy (no idle timer) until it is
/// written or dropped.
pub struct Body {
    pub(crate) kind: Kind,
    pub(crate) _busy: Option<BusyGuard>,
}

pub(crate) enum Kind {
    Empty,
    Full(Option<Bytes>),
    Chunks(mpsc::Receiver<Bytes>),
    File {
        rx: mpsc::Receiver<io::Result<Bytes>>,
        left: u64,
        /// The error to end with, once hyper has flushed.
        failed: Option<io::Error>,
    },
}

impl Body {
    pub(crate) fn empty(busy: Option<BusyGuard>) -> Body {
        Body {
            kind: Kind::Empty,
            _busy: busy,
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Chunks(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
            Kind::File { rx, left, failed } => {
                if let Some(e) = failed.take() {
                    return Poll::Ready(Some(Err(e)));
                }
                let e = match rx.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(b))) => {
                        *left = left.saturating_sub(b.len() as u64);
                        return Poll::Ready(Some(Ok(Frame::data(b))));
                    }
                    Poll::Ready(None) if *left == 0 => return Poll::Ready(None),
                    Poll::Ready(Some(Err(e))) => e,
                    Poll::Ready(None) => {
                        io::Error::new(io::ErrorKind::UnexpectedEof, "the file body ended early")
                    }
                };
                log::warn!("http: a file body ended early: {e}");
                // The error ends the connection at once; one Pending first lets hyper
                // flush what it has (the client gets every byte there was).
                *failed = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Chunks(_) => false,
            Kind::File { left, .. } => *left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Chunks(_) => SizeHint::default(),
            Kind::File { left, .. } => SizeHint::with_exact(*left),
        }
    }
}
