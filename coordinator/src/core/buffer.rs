//! Growing byte buffers that hold secrets or PII (label bytes, answer bodies) without leaving
//! unwiped copies behind when they grow.

use zeroize::Zeroizing;

/// Appends `data` to `buf` without ever reallocating `buf` in place: when it is full, the
/// contents move to a new, larger zeroizing buffer and the old one is wiped on drop.
pub fn push_zeroizing(buf: &mut Zeroizing<Vec<u8>>, data: &[u8], limit: usize) {
    let need = buf.len() + data.len();
    if need > buf.capacity() {
        let cap = need
            .max(buf.capacity().saturating_mul(2))
            .min(limit.max(need));
        let mut bigger = Zeroizing::new(Vec::with_capacity(cap));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_zeroizing_grows_by_copy() {
        let mut buf = Zeroizing::new(Vec::with_capacity(2));
        push_zeroizing(&mut buf, b"abc", 100);
        push_zeroizing(&mut buf, b"defgh", 100);
        assert_eq!(buf.as_slice(), b"abcdefgh");
    }
}
