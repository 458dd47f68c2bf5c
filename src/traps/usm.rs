//! A v3 user's keys localized to the box's engine (RFC 3414 §2.6 and A.2, RFC 7860 for SHA-2),
//! and what they do: authenticate a message (truncated HMAC) and encrypt its scoped PDU
//! (AES-CFB128 per RFC 3826, DES-CBC per RFC 3414 §8). Used only where the box is the
//! authoritative engine, to read and answer v3 INFORMs.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{AsyncStreamCipher, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::digest::Digest;
use hmac::digest::core_api::BlockSizeUser;
use hmac::{Mac, SimpleHmac};

use crate::document::{AuthProtocol, PrivProtocol, SecurityLevel, Snmp};

/// Why a message cannot be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the privacy parameters are {0} bytes, not 8")]
    Salt(usize),
    #[error("the encrypted PDU is {0} bytes, not a whole number of DES blocks")]
    Blocks(usize),
}

/// One user's keys for one engine.
pub struct Keys {
    auth: Option<(AuthProtocol, Vec<u8>)>,
    privacy: Option<(PrivProtocol, Vec<u8>)>,
}

impl Keys {
    /// The keys of the device's `snmp` block, localized to `engine_id`; `None` when a key the
    /// level needs is missing (the document's rules refuse that, but a key is never guessed).
    pub fn localized(snmp: &Snmp, engine_id: &[u8]) -> Option<Keys> {
        let level = snmp.level.unwrap_or(SecurityLevel::NoAuthNoPriv);
        let protocol = snmp.auth_protocol.unwrap_or(AuthProtocol::Sha1);
        let auth = match level {
            SecurityLevel::NoAuthNoPriv => None,
            _ => Some((protocol, localize(protocol, password(&snmp.auth_key)?, engine_id))),
        };
        let privacy = match level {
            SecurityLevel::AuthPriv => {
                let cipher = snmp.priv_protocol.unwrap_or(PrivProtocol::Aes128);
                let mut key = localize(protocol, password(&snmp.priv_key)?, engine_id);
                // Too short for AES-192/256 after MD5 or SHA-1: extended as net-snmp does
                // (draft-reeder-snmpv3-usm-3desede: the key, localized again, appended).
                while key.len() < key_len(cipher) {
                    let more = localize(protocol, &key, engine_id);
                    key.extend_from_slice(&more);
                }
                key.truncate(key_len(cipher));
                Some((cipher, key))
            }
            _ => None,
        };
        Some(Keys { auth, privacy })
    }

    pub fn authenticates(&self) -> bool {
        self.auth.is_some()
    }

    pub fn encrypts(&self) -> bool {
        self.privacy.is_some()
    }

    /// The length of the authentication parameters (0 without authentication).
    pub fn mac_len(&self) -> usize {
        self.auth.as_ref().map_or(0, |(p, _)| mac_len(*p))
    }

    /// The authentication parameters of a whole message whose own are zeroes.
    pub fn mac(&self, message: &[u8]) -> Vec<u8> {
        let Some((protocol, key)) = &self.auth else {
            return Vec::new();
        };
        let mut full = match protocol {
            AuthProtocol::Md5 => hmac::<md5::Md5>(key, message),
            AuthProtocol::Sha1 => hmac::<sha1::Sha1>(key, message),
            AuthProtocol::Sha224 => hmac::<sha2::Sha224>(key, message),
            AuthProtocol::Sha256 => hmac::<sha2::Sha256>(key, message),
            AuthProtocol::Sha384 => hmac::<sha2::Sha384>(key, message),
            AuthProtocol::Sha512 => hmac::<sha2::Sha512>(key, message),
        };
        full.truncate(mac_len(*protocol));
        full
    }

    /// `plain` encrypted for an engine at `boots`/`time`, and the privacy parameters (salt).
    pub fn encrypt(&self, plain: &[u8], boots: u32, time: u32, salt: [u8; 8]) -> (Vec<u8>, Vec<u8>) {
        let Some((cipher, key)) = &self.privacy else {
            return (plain.to_vec(), Vec::new());
        };
        let mut data = plain.to_vec();
        match cipher {
            PrivProtocol::Des => {
                // RFC 3414 §8.1.1.1: the salt begins with the engine's boots.
                let mut salt = salt;
                salt[..4].copy_from_slice(&boots.to_be_bytes());
                data.resize(data.len().div_ceil(8) * 8, 0);
                let mut des = cbc::Encryptor::<des::Des>::new(
                    GenericArray::from_slice(&key[..8]),
                    GenericArray::from_slice(&des_iv(key, &salt)),
                );
                for block in data.chunks_mut(8) {
                    des.encrypt_block_mut(GenericArray::from_mut_slice(block));
                }
                (data, salt.to_vec())
            }
            aes => {
                let iv = aes_iv(boots, time, &salt);
                aes_cfb(*aes, key, &iv, &mut data, true);
                (data, salt.to_vec())
            }
        }
    }

    /// An encrypted scoped PDU from an engine at `boots`/`time`, with its privacy parameters.
    pub fn decrypt(&self, encrypted: &[u8], salt: &[u8], boots: u32, time: u32) -> Result<Vec<u8>, CryptoError> {
        let Some((cipher, key)) = &self.privacy else {
            return Ok(encrypted.to_vec());
        };
        let salt: [u8; 8] = salt.try_into().map_err(|_| CryptoError::Salt(salt.len()))?;
        let mut data = encrypted.to_vec();
        match cipher {
            PrivProtocol::Des => {
                if !data.len().is_multiple_of(8) {
                    return Err(CryptoError::Blocks(data.len()));
                }
                let mut des = cbc::Decryptor::<des::Des>::new(
                    GenericArray::from_slice(&key[..8]),
                    GenericArray::from_slice(&des_iv(key, &salt)),
                );
                for block in data.chunks_mut(8) {
                    des.decrypt_block_mut(GenericArray::from_mut_slice(block));
                }
            }
            aes => aes_cfb(*aes, key, &aes_iv(boots, time, &salt), &mut data, false),
        }
        Ok(data)
    }
}

fn password(key: &Option<crate::secret::Secret>) -> Option<&[u8]> {
    key.as_ref().map(|k| k.expose().as_bytes()).filter(|p| !p.is_empty())
}

fn key_len(cipher: PrivProtocol) -> usize {
    match cipher {
        PrivProtocol::Des | PrivProtocol::Aes128 => 16,
        PrivProtocol::Aes192 => 24,
        PrivProtocol::Aes256 => 32,
    }
}

/// RFC 3414 §6.3.1 and §7.3.1, RFC 7860 §4.2.1.
fn mac_len(protocol: AuthProtocol) -> usize {
    match protocol {
        AuthProtocol::Md5 | AuthProtocol::Sha1 => 12,
        AuthProtocol::Sha224 => 16,
        AuthProtocol::Sha256 => 24,
        AuthProtocol::Sha384 => 32,
        AuthProtocol::Sha512 => 48,
    }
}

fn localize(protocol: AuthProtocol, password: &[u8], engine_id: &[u8]) -> Vec<u8> {
    match protocol {
        AuthProtocol::Md5 => localize_with::<md5::Md5>(password, engine_id),
        AuthProtocol::Sha1 => localize_with::<sha1::Sha1>(password, engine_id),
        AuthProtocol::Sha224 => localize_with::<sha2::Sha224>(password, engine_id),
        AuthProtocol::Sha256 => localize_with::<sha2::Sha256>(password, engine_id),
        AuthProtocol::Sha384 => localize_with::<sha2::Sha384>(password, engine_id),
        AuthProtocol::Sha512 => localize_with::<sha2::Sha512>(password, engine_id),
    }
}

/// RFC 3414 A.2: the hash of a megabyte of the password repeated, then hashed again between
/// the engine id. `password` is never empty.
fn localize_with<D: Digest>(password: &[u8], engine_id: &[u8]) -> Vec<u8> {
    let mut hasher = D::new();
    let mut chunk = [0u8; 64];
    let mut at = 0;
    for _ in 0..(1 << 20) / 64 {
        for byte in &mut chunk {
            *byte = password[at];
            at = (at + 1) % password.len();
        }
        hasher.update(chunk);
    }
    let ku = hasher.finalize();
    let mut hasher = D::new();
    hasher.update(&ku);
    hasher.update(engine_id);
    hasher.update(&ku);
    hasher.finalize().to_vec()
}

fn hmac<D: Digest + BlockSizeUser>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: the error cannot happen.
    let Ok(mut mac) = <SimpleHmac<D> as Mac>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn des_iv(key: &[u8], salt: &[u8; 8]) -> [u8; 8] {
    let mut iv = [0u8; 8];
    for (i, b) in iv.iter_mut().enumerate() {
        *b = key[8 + i] ^ salt[i];
    }
    iv
}

/// RFC 3826 §3.1.2.1: boots, time, then the salt.
fn aes_iv(boots: u32, time: u32, salt: &[u8; 8]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&boots.to_be_bytes());
    iv[4..8].copy_from_slice(&time.to_be_bytes());
    iv[8..].copy_from_slice(salt);
    iv
}

fn aes_cfb(cipher: PrivProtocol, key: &[u8], iv: &[u8; 16], data: &mut [u8], encrypt: bool) {
    let iv = GenericArray::from_slice(iv);
    macro_rules! run {
        ($aes:ty, $len:expr) => {{
            let key = GenericArray::from_slice(&key[..$len]);
            if encrypt {
                cfb_mode::Encryptor::<$aes>::new(key, iv).encrypt(data)
            } else {
                cfb_mode::Decryptor::<$aes>::new(key, iv).decrypt(data)
            }
        }};
    }
    match cipher {
        PrivProtocol::Aes192 => run!(aes::Aes192, 24),
        PrivProtocol::Aes256 => run!(aes::Aes256, 32),
        _ => run!(aes::Aes128, 16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 3414 A.3.1 and A.3.2: "maplesyrup" localized to engine 00…02.
    #[test]
    fn keys_are_localized_as_rfc_3414_appendix_a_3_says() {
        let engine = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        assert_eq!(
            hex(&localize(AuthProtocol::Md5, b"maplesyrup", &engine)),
            "526f5eed9fcce26f8964c2930787d82b"
        );
        assert_eq!(
            hex(&localize(AuthProtocol::Sha1, b"maplesyrup", &engine)),
            "6695febc9288e36282235fc7151f128497b38f3f"
        );
    }

    fn keys(level: &str, auth: &str, privacy: &str) -> Keys {
        let snmp: Snmp = serde_json::from_value(serde_json::json!({
            "version": "3", "user": "u", "level": level, "auth_protocol": auth,
            "auth_key": "auth-pass-1", "priv_protocol": privacy, "priv_key": "priv-pass-1"
        }))
        .expect("snmp block");
        Keys::localized(&snmp, b"\x80\x00\x00\x00\x05engine").expect("keys")
    }

    #[test]
    fn what_is_encrypted_decrypts_with_every_cipher() {
        for (auth, privacy) in [
            ("md5", "des"),
            ("sha", "aes"),
            ("sha", "aes192"),
            ("sha", "aes256"),
            ("sha512", "aes256"),
        ] {
            let keys = keys("authPriv", auth, privacy);
            let plain = b"a scoped PDU of 29 bytes long".to_vec();
            let (sealed, salt) = keys.encrypt(&plain, 3, 1234, [7; 8]);
            assert_ne!(sealed[..plain.len()], plain[..], "{privacy}");
            let opened = keys.decrypt(&sealed, &salt, 3, 1234).expect("decrypts");
            assert_eq!(&opened[..plain.len()], &plain[..], "{auth} {privacy}");
        }
    }

    #[test]
    fn mac_lengths_follow_the_protocol_and_no_auth_has_none() {
        assert_eq!(keys("authNoPriv", "md5", "aes").mac(b"m").len(), 12);
        assert_eq!(keys("authNoPriv", "sha256", "aes").mac(b"m").len(), 24);
        assert_eq!(keys("authNoPriv", "sha512", "aes").mac(b"m").len(), 48);
        let none = keys("noAuthNoPriv", "sha", "aes");
        assert!(!none.authenticates() && !none.encrypts() && none.mac(b"m").is_empty());
    }
}
