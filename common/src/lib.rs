//! What both Bookshop services share, so each `main.rs` stays thin and both behave alike:
//! [`serve`] (the [`serve::App`] trait, stopped by [`shutdown`]), [`settings`] (errors name the
//! key, the value and the layer), [`net`], [`tls`], [`logging`], [`metrics`], [`telemetry`]; and
//! here, which request ids a caller may hand us, a hash that is the same on every machine.

pub mod logging;
pub mod metrics;
pub mod net;
pub mod serve;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

use std::time::Duration;

/// The longest request id (or trace header) taken from a caller.
pub const MAX_ID_LEN: usize = 128;

/// 1 to [`MAX_ID_LEN`] visible ASCII characters: no control characters, spaces or megabytes.
pub fn loggable_id(value: &[u8]) -> bool {
    (1..=MAX_ID_LEN).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

/// 64-bit FNV-1a: the same on every machine and release (unlike `std`'s hashers), and `const`.
pub const fn fnv1a(mut bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    while let [byte, rest @ ..] = bytes {
        hash = (hash ^ *byte as u64).wrapping_mul(0x0000_0100_0000_01b3);
        bytes = rest;
    }
    hash
}

pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ascii_ids_are_loggable() {
        assert!(loggable_id(b"abc-123_XYZ.4"));
        assert!(!loggable_id(b""));
        assert!(!loggable_id(b"has space"));
        assert!(!loggable_id(b"new\nline"));
        assert!(!loggable_id("é".as_bytes()));
        assert!(!loggable_id("x".repeat(MAX_ID_LEN + 1).as_bytes()));
        assert!(loggable_id("x".repeat(MAX_ID_LEN).as_bytes()));
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
