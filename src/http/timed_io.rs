//! The connection's socket as hyper sees it, with the timeouts hyper does not have the way
//! we want them: a connection waits `idle_timeout` for its next request, a request's head
//! must arrive within `head_timeout` of its first byte (then 408), and a write that makes
//! no progress for `write_timeout` ends the connection (a client that stopped reading).
//!
//! Owns: those three timers and what they need to know of the connection (`ConnState`:
//! whether a request is in flight, set by `server`). Does not own: framing (hyper), the
//! request/answer logic (`server`).
//!
//! Why not hyper's `header_read_timeout`: its timer also runs while a kept-alive
//! connection waits for its next request, so idle and head timeouts could not differ, and
//! when it fires hyper closes without an answer; ours answers 408 as before.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// What the timers need to know of the connection, shared with its service.
#[derive(Default)]
pub struct ConnState {
    /// Requests whose answer is not yet fully written (0 or 1: HTTP/1.1 answers in order).
    busy: AtomicUsize,
    /// Counts requests, so a head timer started before one never fires after it.
    requests: AtomicU64,
    /// The connection is a WebSocket now: no idle or head timers, only the write timer.
    upgraded: AtomicBool,
    /// A read that waited while busy: woken when the answer is done, so the idle timer
    /// starts (no byte may ever arrive to wake it).
    read_waker: Mutex<Option<Waker>>,
}

impl ConnState {
    /// A request's head has arrived; the guard ends it when its answer is written.
    pub fn begin(self: &Arc<Self>) -> BusyGuard {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.busy.fetch_add(1, Ordering::SeqCst);
        BusyGuard(self.clone())
    }

    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst) > 0
    }

    pub fn set_upgraded(&self) {
        self.upgraded.store(true, Ordering::SeqCst);
    }
}

/// Held by an answer's body until hyper has written (or dropped) it.
pub struct BusyGuard(Arc<ConnState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        let waker = self
            .0
            .read_waker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Waiting {
    /// For the first byte of the next request.
    Idle,
    /// For the rest of a head whose first bytes came.
    Head,
}

pub struct Timeouts {
    pub idle: Duration,
    pub head: Duration,
    pub write: Duration,
}

pub struct TimedIo {
    inner: TcpStream,
    state: Arc<ConnState>,
    limits: Timeouts,
    /// The read timer, what it waits for, and the request count when it started.
    read_timer: Option<(Pin<Box<Sleep>>, Waiting, u64)>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// What a head timeout answers (written straight to the socket: no request exists).
    timeout_answer: bytes::Bytes,
}

impl TimedIo {
    pub fn new(
        inner: TcpStream,
        state: Arc<ConnState>,
        limits: Timeouts,
        timeout_answer: bytes::Bytes,
    ) -> TimedIo {
        TimedIo {
            inner,
            state,
            limits,
            read_timer: None,
            write_timer: None,
            timeout_answer,
        }
    }

    fn arm(&mut self, waiting: Waiting) {
        let requests = self.state.requests.load(Ordering::SeqCst);
        let current = self.read_timer.as_ref().map(|(_, w, n)| (*w, *n));
        if current == Some((waiting, requests)) {
            return;
        }
        let after = match waiting {
            Waiting::Idle => self.limits.idle,
            Waiting::Head => self.limits.head,
        };
        let sleep = Box::pin(tokio::time::sleep_until(Instant::now() + after));
        self.read_timer = Some((sleep, waiting, requests));
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut me.inner).poll_read(cx, buf);
        if me.state.upgraded.load(Ordering::SeqCst) || me.state.busy() {
            // A handler or an answer in progress, or a WebSocket: no read timers.
            me.read_timer = None;
            if polled.is_pending() {
                *me.state
                    .read_waker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            }
            return polled;
        }
        let requests = me.state.requests.load(Ordering::SeqCst);
        if me
            .read_timer
            .as_ref()
            .is_some_and(|(_, _, n)| *n != requests)
        {
            me.read_timer = None; // started before the last request: stale
        }
        match polled {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    me.arm(Waiting::Head);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if me.read_timer.is_none() {
                    me.arm(Waiting::Idle);
                }
                let Some((sleep, waiting, _)) = me.read_timer.as_mut() else {
                    return Poll::Pending;
                };
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if *waiting == Waiting::Head {
                    // Nothing else is being written (no request): one small write that a
                    // fresh socket buffer takes whole; if not, closing says enough.
                    let _ = me.inner.try_write(&me.timeout_answer);
                    return Poll::Ready(Err(timed_out("the request head came too slowly")));
                }
                Poll::Ready(Err(timed_out("idle")))
            }
        }
    }
}

impl TimedIo {
    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => {
                let write = self.limits.write;
                let sleep = self
                    .write_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(write)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(timed_out("the client does not read its answer")));
                }
                Poll::Pending
            }
            ready => {
                self.write_timer = None;
                ready
            }
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write(cx, buf);
        me.after_write(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
        me.after_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_flush(cx);
        me.after_write(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
