//! Accepts etcdctl 3.4's `:authority` on client connections.
//!
//! etcdctl 3.4 (Go clientv3 with grpc-go's passthrough resolver) sends the endpoint as given,
//! scheme included, as the HTTP/2 `:authority` (`http://127.0.0.1:2379`), e.g. for
//! `etcdctl --endpoints http://… endpoint status` and every `--cluster` command. etcd's Go
//! server ignores it; the Rust h2 server rejects the stream with PROTOCOL_ERROR. This adapter
//! sits between the TCP socket and h2 and rewrites such an authority into a valid one of the
//! same length (`aaaaaa@127.0.0.1:2379`: the scheme becomes userinfo padding).
//!
//! Invariants:
//! - Only HEADERS/CONTINUATION frames from the client are looked at; every other byte passes
//!   through untouched, in order.
//! - The replacement has the decoded length of the original, so HPACK dynamic-table sizes
//!   (and therefore every later index) stay identical between the client's encoder and h2's
//!   decoder; a value that was added to the table is added in its rewritten form.
//! - Anything unexpected (a malformed frame, an HPACK error, a block too large to re-frame)
//!   switches the adapter to plain pass-through for the rest of the connection: h2 then sees
//!   exactly what the client sent and reports errors itself.
//! - A client sends the same authority on every request of a connection (grpc-go sets it
//!   per channel), so once a request arrives with a valid `:authority`, the connection goes
//!   to pass-through: HPACK decoding costs only the first request of well-behaved clients.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use fluke_hpack::Decoder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::Connected;

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const PREFACE_LEN: usize = H2_PREFACE.len();
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// h2's default SETTINGS_MAX_FRAME_SIZE: a rewritten block must fit one frame.
const MAX_FRAME: usize = 16_384;

/// A client connection whose `:authority` values are made acceptable to h2.
/// Generic over the connection (`TcpStream`, or a TLS stream after its handshake).
pub struct FixAuthority<IO = TcpStream> {
    inner: IO,
    raw: BytesMut,
    out: BytesMut,
    preface_left: usize,
    decoder: Decoder<'static>,
    /// A header block being assembled: (stream id, flags of HEADERS, priority bytes, block).
    pending: Option<(u32, u8, Vec<u8>, Vec<u8>)>,
    passthrough: bool,
}

impl<IO> FixAuthority<IO> {
    pub fn new(inner: IO) -> Self {
        FixAuthority {
            inner,
            raw: BytesMut::with_capacity(8192),
            out: BytesMut::new(),
            preface_left: PREFACE_LEN,
            decoder: Decoder::new(),
            pending: None,
            passthrough: false,
        }
    }

    /// Moves every complete unit of `raw` to `out`, rewriting header blocks as needed.
    fn process(&mut self) {
        if self.passthrough {
            let all = self.raw.split();
            self.out.extend_from_slice(&all);
            return;
        }
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.raw.len());
            // Not HTTP/2 (an HTTP/1.1 request for the gateway): nothing to rewrite.
            let seen = PREFACE_LEN - self.preface_left;
            if self.raw[..n] != H2_PREFACE[seen..seen + n] {
                self.passthrough = true;
                let all = self.raw.split();
                self.out.extend_from_slice(&all);
                return;
            }
            let pre = self.raw.split_to(n);
            self.out.extend_from_slice(&pre);
            self.preface_left -= n;
            if self.preface_left > 0 {
                return;
            }
        }
        while self.raw.len() >= FRAME_HEADER {
            let len = u32::from_be_bytes([0, self.raw[0], self.raw[1], self.raw[2]]) as usize;
            if self.raw.len() < FRAME_HEADER + len {
                return;
            }
            let kind = self.raw[3];
            let flags = self.raw[4];
            let stream = u32::from_be_bytes([self.raw[5], self.raw[6], self.raw[7], self.raw[8]])
                & 0x7fff_ffff;
            let frame = self.raw.split_to(FRAME_HEADER + len);
            let ok = match kind {
                HEADERS if self.pending.is_none() => self.on_headers(&frame, flags, stream),
                CONTINUATION if self.pending.as_ref().is_some_and(|p| p.0 == stream) => {
                    self.on_continuation(&frame[FRAME_HEADER..], flags)
                }
                HEADERS | CONTINUATION => false,
                _ if self.pending.is_some() => false,
                _ => {
                    self.out.extend_from_slice(&frame);
                    true
                }
            };
            if !ok {
                self.give_up(&frame);
                return;
            }
        }
    }

    /// Stops rewriting: whatever was held back and the rest go through unchanged.
    fn give_up(&mut self, current: &[u8]) {
        tracing::debug!("authority rewriting off for this connection");
        if let Some((stream, flags, prio, block)) = self.pending.take() {
            // Re-emit what was held back as one HEADERS frame (unpadded), so order is kept.
            self.emit_headers(stream, flags & !PADDED, &prio, &block);
        }
        self.out.extend_from_slice(current);
        let rest = self.raw.split();
        self.out.extend_from_slice(&rest);
        self.passthrough = true;
    }

    fn on_headers(&mut self, frame: &[u8], flags: u8, stream: u32) -> bool {
        let mut p = &frame[FRAME_HEADER..];
        let mut pad = 0usize;
        if flags & PADDED != 0 {
            let Some((&n, rest)) = p.split_first() else {
                return false;
            };
            pad = n as usize;
            p = rest;
        }
        let mut prio = Vec::new();
        if flags & PRIORITY != 0 {
            if p.len() < 5 {
                return false;
            }
            prio.extend_from_slice(&p[..5]);
            p = &p[5..];
        }
        if p.len() < pad {
            return false;
        }
        let block = p[..p.len() - pad].to_vec();
        self.pending = Some((stream, flags & !PADDED, prio, block));
        if flags & END_HEADERS != 0 {
            return self.finish_block();
        }
        true
    }

    fn on_continuation(&mut self, payload: &[u8], flags: u8) -> bool {
        if let Some(p) = self.pending.as_mut() {
            p.3.extend_from_slice(payload);
        }
        if flags & END_HEADERS != 0 {
            return self.finish_block();
        }
        true
    }

    fn finish_block(&mut self) -> bool {
        let Some((stream, flags, prio, block)) = self.pending.take() else {
            return false;
        };
        let mut bad_authority = None;
        let mut good_authority = false;
        let decoded = self.decoder.decode_with_cb(&block, |name, value| {
            if &name[..] == b":authority" {
                if value.windows(3).any(|w| w == b"://") {
                    bad_authority = Some(value.to_vec());
                } else {
                    good_authority = true;
                }
            }
        });
        if decoded.is_err() {
            self.pending = Some((stream, flags, prio, block));
            return false;
        }
        let block = match bad_authority.and_then(|v| rewrite_block(&block, &fixed_authority(&v))) {
            Some(b) => b,
            None => block,
        };
        if block.len() + prio.len() > MAX_FRAME {
            self.pending = Some((stream, flags, prio, block));
            return false;
        }
        self.emit_headers(stream, flags | END_HEADERS, &prio, &block);
        if good_authority {
            self.passthrough = true;
            let rest = self.raw.split();
            self.out.extend_from_slice(&rest);
        }
        true
    }

    fn emit_headers(&mut self, stream: u32, flags: u8, prio: &[u8], block: &[u8]) {
        let len = (prio.len() + block.len()) as u32;
        self.out.extend_from_slice(&len.to_be_bytes()[1..]);
        self.out.extend_from_slice(&[HEADERS, flags | END_HEADERS]);
        self.out.extend_from_slice(&stream.to_be_bytes());
        self.out.extend_from_slice(prio);
        self.out.extend_from_slice(block);
    }
}

/// `scheme://host:port[/…]` -> `xxxx@host:port` padded to the same length.
fn fixed_authority(v: &[u8]) -> Vec<u8> {
    let start = v
        .windows(3)
        .position(|w| w == b"://")
        .map(|i| i + 3)
        .unwrap_or(0);
    let rest = &v[start..];
    let host_port = &rest[..rest.iter().position(|&b| b == b'/').unwrap_or(rest.len())];
    let pad = v.len().saturating_sub(host_port.len() + 1).max(1);
    let mut out = vec![b'a'; pad];
    out.push(b'@');
    out.extend_from_slice(host_port);
    out
}

/// Decodes an HPACK integer with an `n`-bit prefix; returns (value, bytes used).
fn read_int(buf: &[u8], n: u8) -> Option<(usize, usize)> {
    let mask = (1u16 << n) as usize - 1;
    let mut v = (*buf.first()? as usize) & mask;
    if v < mask {
        return Some((v, 1));
    }
    let mut shift = 0;
    for (i, &b) in buf.iter().enumerate().skip(1) {
        v = v.checked_add(((b & 0x7f) as usize).checked_shl(shift)?)?;
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    None
}

fn write_int(out: &mut Vec<u8>, first_bits: u8, n: u8, v: usize) {
    let mask = (1usize << n) - 1;
    if v < mask {
        out.push(first_bits | v as u8);
        return;
    }
    out.push(first_bits | mask as u8);
    let mut v = v - mask;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// Length of the HPACK string at the start of `buf`.
fn string_len(buf: &[u8]) -> Option<usize> {
    let (len, used) = read_int(buf, 7)?;
    (buf.len() >= used + len).then_some(used + len)
}

/// Rewrites the literal `:authority` (static name index 1) of `block` to `value`.
fn rewrite_block(block: &[u8], value: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + 8);
    let mut i = 0;
    let mut done = false;
    while i < block.len() {
        let b = block[i];
        let prefix = match b {
            _ if b & 0x80 != 0 => 7,    // indexed
            _ if b & 0xc0 == 0x40 => 6, // literal, incremental indexing
            _ if b & 0xe0 == 0x20 => 5, // table size update
            _ => 4,                     // literal without / never indexed
        };
        let (index, used) = read_int(&block[i..], prefix)?;
        if prefix == 7 || prefix == 5 {
            out.extend_from_slice(&block[i..i + used]);
            i += used;
            continue;
        }
        let mut j = i + used;
        if index == 0 {
            j += string_len(&block[j..])?;
        }
        let value_len = string_len(&block[j..])?;
        if index == 1 && !done {
            out.extend_from_slice(&block[i..j]);
            write_int(&mut out, 0, 7, value.len());
            out.extend_from_slice(value);
            done = true;
        } else {
            out.extend_from_slice(&block[i..j + value_len]);
        }
        i = j + value_len;
    }
    done.then_some(out)
}

impl<IO: AsyncRead + Unpin> AsyncRead for FixAuthority<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.passthrough && this.out.is_empty() {
            // Nothing held back: read straight into the caller's buffer.
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            let mut tmp = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut tmp);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        // EOF: hand over anything held back, then report EOF.
                        if !this.raw.is_empty() || this.pending.is_some() {
                            this.give_up(&[]);
                            continue;
                        }
                        return Poll::Ready(Ok(()));
                    }
                    this.raw.extend_from_slice(rb.filled());
                    this.process();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FixAuthority<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for FixAuthority<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_keeps_length_and_is_a_valid_authority() {
        let v = b"http://127.0.0.1:2379";
        let f = fixed_authority(v);
        assert_eq!(f.len(), v.len());
        let s = std::str::from_utf8(&f).unwrap();
        let a: http::uri::Authority = s.parse().unwrap();
        assert_eq!(a.host(), "127.0.0.1");
        assert_eq!(a.port_u16(), Some(2379));
    }

    #[test]
    fn integers_round_trip() {
        for v in [0usize, 5, 14, 15, 16, 127, 128, 300, 70_000] {
            let mut out = Vec::new();
            write_int(&mut out, 0, 4, v);
            assert_eq!(read_int(&out, 4), Some((v, out.len())), "{v}");
        }
    }

    #[test]
    fn literal_authority_is_rewritten_in_place() {
        // :method GET (indexed 2), :authority literal incremental (0x41) raw value, :path /x.
        let value = b"http://h:1";
        let mut block = vec![0x82, 0x41, value.len() as u8];
        block.extend_from_slice(value);
        block.extend_from_slice(&[0x44, 0x02, b'/', b'x']);
        let fixed = fixed_authority(value);
        let out = rewrite_block(&block, &fixed).unwrap();
        let mut d = Decoder::new();
        let headers = d.decode(&out).unwrap();
        assert_eq!(headers[1], (b":authority".to_vec(), fixed.clone()));
        assert_eq!(headers[2], (b":path".to_vec(), b"/x".to_vec()));
        assert_eq!(out.len(), block.len());
    }

    #[tokio::test]
    async fn http1_requests_pass_through_untouched() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let mut fixed = FixAuthority::new(l.accept().await.unwrap().0);
        let req = b"GET /version HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n";
        client.write_all(req).await.unwrap();
        let mut got = vec![0u8; req.len()];
        fixed.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..], &req[..]);
    }
}
