//! `bind ... tls-ticket-keys <file>`: session ticket keys an operator supplies, as HAProxy's.
//!
//! The file holds base64 keys of 48 or 80 bytes, one a line (`openssl rand 80 | openssl
//! base64 -A`); the first key sets the length of all. The last [`KEYS_IN_USE`] keys are in use
//! (HAProxy's `TLS_TICKETS_NO`): all of them open tickets, the penultimate seals new ones, so an
//! operator rotates by appending a key and reloading, or with `set ssl tls-key` (the new key
//! becomes the last, the oldest is dropped). Every shard shares the one [`TicketKeys`] of the
//! bind, so a ticket resumes whichever shard the client's next connection reaches, and several
//! ringlb processes given the same file resume each other's tickets.
//!
//! A key is HAProxy's `name[16] | aes[16|32] | hmac[16|32]`. ringlb seals tickets with
//! AES-GCM under the AES part (AES-128 for 48-byte keys, AES-256 for 80-byte ones), whose tag
//! does what the HMAC key does in OpenSSL's CBC+HMAC tickets; the HMAC part is kept (shown by
//! `show tls-keys`) but not used. A ticket is `name | nonce[12] | sealed(issued[8] | state) |
//! tag[16]` (HAProxy's tickets are not readable by ringlb nor the reverse: the session state
//! inside differs anyway). The issue time is sealed in so tickets older than
//! `tune.ssl.lifetime` are refused, as with the generated keys (`resume.rs`).

use std::sync::{Arc, RwLock};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use rustls::server::ProducesTickets;
use rustls::time_provider::TimeProvider;

/// How many of the file's keys are in use (HAProxy's `TLS_TICKETS_NO`, 3 by default).
pub const KEYS_IN_USE: usize = 3;
const NAME_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// One key of the file.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKey {
    raw: Vec<u8>,
}

impl std::fmt::Debug for TicketKey {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TicketKey({} bytes)", self.raw.len())
    }
}

/// Why a key was refused, in haproxy 2.6's words where it has them (`set ssl tls-key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// "received invalid base64 encoded TLS key."
    Base64,
    /// "received a key of wrong size."
    Size,
}

impl TicketKey {
    /// Decodes one base64 key; 48 or 80 bytes.
    pub fn from_base64(text: &str) -> Result<TicketKey, KeyError> {
        let raw = base64_decode(text.trim()).ok_or(KeyError::Base64)?;
        if raw.len() != 48 && raw.len() != 80 {
            return Err(KeyError::Size);
        }
        Ok(TicketKey { raw })
    }

    pub fn to_base64(&self) -> String {
        base64_encode(&self.raw)
    }

    fn name(&self) -> &[u8] {
        self.raw.get(..NAME_LEN).unwrap_or_default()
    }

    /// The AEAD key of the AES part.
    fn aead(&self) -> Option<LessSafeKey> {
        let (alg, aes) = if self.raw.len() == 48 {
            (&AES_128_GCM, self.raw.get(NAME_LEN..32)?)
        } else {
            (&AES_256_GCM, self.raw.get(NAME_LEN..48)?)
        };
        Some(LessSafeKey::new(UnboundKey::new(alg, aes).ok()?))
    }
}

/// Reads a keys file's text: every non-empty line a key, all of one length, at least
/// [`KEYS_IN_USE`]; the last ones are kept.
pub fn parse_file(text: &str) -> Result<Vec<TicketKey>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let key = TicketKey::from_base64(line).map_err(|e| match e {
            KeyError::Base64 => format!("line {}: invalid base64 TLS ticket key", n + 1),
            KeyError::Size => format!(
                "line {}: a TLS ticket key must be 48 or 80 bytes long",
                n + 1
            ),
        })?;
        if keys
            .first()
            .is_some_and(|k: &TicketKey| k.raw.len() != key.raw.len())
        {
            return Err(format!(
                "line {}: all TLS ticket keys must have the length of the first (48 or 80 bytes)",
                n + 1
            ));
        }
        keys.push(key);
    }
    if keys.len() < KEYS_IN_USE {
        return Err(format!(
            "not enough TLS ticket keys ({} found, {KEYS_IN_USE} needed)",
            keys.len()
        ));
    }
    Ok(keys.split_off(keys.len() - KEYS_IN_USE))
}

/// The keys of one `tls-ticket-keys` file, shared by every shard (a reference HAProxy numbers
/// and names by file in `show tls-keys`).
pub struct TicketKeys {
    file: String,
    /// Oldest first; [`KEYS_IN_USE`] of them. Read per ticket sealed or opened (handshakes
    /// only), written by `set ssl tls-key`.
    ring: RwLock<Vec<TicketKey>>,
    lifetime_secs: u32,
    clock: Arc<dyn TimeProvider>,
    random: &'static dyn rustls::crypto::SecureRandom,
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKeys")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    pub fn new(
        file: String,
        keys: Vec<TicketKey>,
        lifetime_secs: u32,
        clock: Arc<dyn TimeProvider>,
    ) -> Arc<TicketKeys> {
        debug_assert_eq!(keys.len(), KEYS_IN_USE);
        Arc::new(TicketKeys {
            file,
            ring: RwLock::new(keys),
            lifetime_secs,
            clock,
            random: crate::provider().secure_random,
        })
    }

    /// The file the keys came from, as written on the `bind` line.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The keys in use, oldest first, in base64 (`show tls-keys`).
    pub fn keys_base64(&self) -> Vec<String> {
        self.ring
            .read()
            .map(|r| r.iter().map(TicketKey::to_base64).collect())
            .unwrap_or_default()
    }

    /// `set ssl tls-key`: `key` becomes the last key (the previous last one now seals new
    /// tickets), the oldest is dropped. Its length must be the file's.
    pub fn push(&self, key: &str) -> Result<(), KeyError> {
        let key = TicketKey::from_base64(key)?;
        let mut ring = self.ring.write().map_err(|_| KeyError::Size)?;
        if ring.first().is_some_and(|k| k.raw.len() != key.raw.len()) {
            return Err(KeyError::Size);
        }
        ring.push(key);
        if ring.len() > KEYS_IN_USE {
            ring.remove(0);
        }
        debug_assert_eq!(ring.len(), KEYS_IN_USE);
        Ok(())
    }

    fn now_secs(&self) -> u64 {
        self.clock.current_time().map_or(0, |t| t.as_secs())
    }
}

impl ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime_secs
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let ring = self.ring.read().ok()?;
        // The penultimate key seals (HAProxy's rule): the last one is already known to
        // every process given the file, ready to take over at the next rotation.
        let key = ring.get(KEYS_IN_USE - 2)?;
        let aead = key.aead()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + 8 + plain.len() + TAG_LEN);
        out.extend_from_slice(key.name());
        out.extend_from_slice(&nonce);
        let mut sealed = Vec::with_capacity(8 + plain.len() + TAG_LEN);
        sealed.extend_from_slice(&self.now_secs().to_be_bytes());
        sealed.extend_from_slice(plain);
        aead.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(key.name()),
            &mut sealed,
        )
        .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        let (name, rest) = ticket.split_at_checked(NAME_LEN)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let aead = {
            let ring = self.ring.read().ok()?;
            ring.iter().find(|k| k.name() == name)?.aead()?
        };
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let opened = aead.open_in_place(nonce, Aad::from(name), &mut buf).ok()?;
        let (stamp, state) = opened.split_at_checked(8)?;
        let issued = u64::from_be_bytes(stamp.try_into().ok()?);
        if self.now_secs() >= issued.saturating_add(u64::from(self.lifetime_secs)) {
            return None;
        }
        Some(state.to_vec())
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding; `None` on any other character or a bad length.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quad) in bytes.chunks(4).enumerate() {
        let last = (i + 1) * 4 == bytes.len();
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in quad.get(..4 - pad)? {
            let v = B64.iter().position(|&a| a == c)?;
            n = (n << 6) | v as u32;
        }
        n <<= 6 * pad as u32;
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(got.get(..3 - pad)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resume::tests::FakeClock;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn key(seed: u8, len: usize) -> String {
        base64_encode(
            &(0..len)
                .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn base64_round_trips_and_refuses_garbage() {
        for n in 0..10 {
            let data: Vec<u8> = (0..n).map(|i: u8| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&data)), Some(data));
        }
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
        assert_eq!(base64_decode("!!!!"), None);
        assert_eq!(base64_decode("Zm9"), None);
        assert_eq!(base64_decode("Zg==Zg=="), None);
    }

    #[test]
    fn the_file_keeps_its_last_three_keys_of_one_length() {
        let text = format!(
            "{}\n{}\n\n{}\n{}\n",
            key(1, 80),
            key(2, 80),
            key(3, 80),
            key(4, 80)
        );
        let keys = parse_file(&text).unwrap();
        assert_eq!(
            keys.iter().map(TicketKey::to_base64).collect::<Vec<_>>(),
            [key(2, 80), key(3, 80), key(4, 80)]
        );
        assert!(parse_file(&format!("{}\n{}\n", key(1, 80), key(2, 80)))
            .unwrap_err()
            .contains("not enough TLS ticket keys (2 found, 3 needed)"));
        assert!(
            parse_file(&format!("{}\n{}\n{}\n", key(1, 80), key(2, 48), key(3, 80)))
                .unwrap_err()
                .starts_with("line 2: all TLS ticket keys must have the length")
        );
        assert!(parse_file("abc\n")
            .unwrap_err()
            .starts_with("line 1: invalid base64"));
        assert!(parse_file(&key(1, 32))
            .unwrap_err()
            .contains("48 or 80 bytes"));
    }

    #[test]
    fn tickets_open_under_any_key_in_use_until_rotated_out_or_too_old() {
        let clock = Arc::new(FakeClock(AtomicU64::new(1_000)));
        for len in [48, 80] {
            let keys = || parse_file(&[key(1, len), key(2, len), key(3, len)].join("\n")).unwrap();
            let a = TicketKeys::new("k".into(), keys(), 300, clock.clone());
            // Another process given the same file opens a's tickets.
            let b = TicketKeys::new("k".into(), keys(), 300, clock.clone());
            let t1 = a.encrypt(b"state one").unwrap();
            assert_eq!(
                &t1[..16],
                &TicketKey::from_base64(&key(2, len)).unwrap().raw[..16]
            );
            assert_eq!(b.decrypt(&t1), Some(b"state one".to_vec()));
            // Tampering is refused.
            let mut bad = t1.clone();
            *bad.last_mut().unwrap() ^= 1;
            assert_eq!(a.decrypt(&bad), None);
            // One rotation: key 2 is still in use (now the oldest), so t1 still opens; new
            // tickets are sealed under key 3.
            a.push(&key(4, len)).unwrap();
            assert_eq!(a.decrypt(&t1), Some(b"state one".to_vec()));
            let t2 = a.encrypt(b"two").unwrap();
            assert_eq!(
                &t2[..16],
                &TicketKey::from_base64(&key(3, len)).unwrap().raw[..16]
            );
            // Two rotations: key 2 is gone.
            a.push(&key(5, len)).unwrap();
            assert_eq!(a.decrypt(&t1), None);
            assert_eq!(a.decrypt(&t2), Some(b"two".to_vec()));
            assert_eq!(a.keys_base64(), [key(3, len), key(4, len), key(5, len)]);
            // Lifetime.
            clock.0.fetch_add(300, Ordering::Relaxed);
            assert_eq!(a.decrypt(&t2), None);
            // A key of the other length, or not base64, is refused.
            let other = if len == 48 { 80 } else { 48 };
            assert_eq!(a.push(&key(6, other)), Err(KeyError::Size));
            assert_eq!(a.push("!!!!"), Err(KeyError::Base64));
        }
    }
}
