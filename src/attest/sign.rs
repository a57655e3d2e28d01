//! Signing with a local key (`--sign-key`): an ECDSA P-256 private key in PEM (PKCS#8 as
//! `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes, or SEC1
//! `EC PRIVATE KEY`), a DSSE envelope over an in-toto statement. The signature is ASN.1
//! DER ECDSA over SHA-256 of the DSSE pre-authentication encoding, so
//! `openssl dgst -sha256 -verify pub.pem -signature sig.der pae.bin` checks it. ring does
//! the arithmetic (it is already linked for TLS).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::json;

use crate::error::UsageError;

/// `id-ecPublicKey` and `prime256v1` as a DER AlgorithmIdentifier.
const P256_ALGORITHM: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

/// A signing key, checked when the command line is read.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// PKCS#8 DER.
    pkcs8: Vec<u8>,
    /// Hex sha256 of the public key's SubjectPublicKeyInfo (DER).
    pub keyid: String,
    /// The public key as SubjectPublicKeyInfo PEM.
    pub public_pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(keyid {})", self.keyid)
    }
}

/// The DSSE pre-authentication encoding: what is signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

/// A SEC1 `ECPrivateKey` wrapped as PKCS#8 (version 0, P-256 algorithm).
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(P256_ALGORITHM);
    body.extend(der(0x04, sec1));
    der(0x30, &body)
}

fn pem_blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut label: Option<String> = None;
    let mut body = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            label = Some(l.to_string());
            body.clear();
        } else if line.starts_with("-----END ") {
            if let Some(l) = label.take() {
                out.push((l, std::mem::take(&mut body)));
            }
        } else if label.is_some() && !line.contains(':') {
            body.push_str(line);
        }
    }
    out
}

impl SigningKey {
    /// Read and check a key file; every problem is a usage error that says what to do.
    pub fn load(path: &Path) -> Result<SigningKey, UsageError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| UsageError(format!("--sign-key {shown}: cannot read it: {e}")))?;
        let blocks = pem_blocks(&text);
        let Some((label, body)) = blocks
            .iter()
            .find(|(l, _)| l.contains("PRIVATE KEY"))
            .cloned()
        else {
            return Err(UsageError(format!(
                "--sign-key {shown}: no PEM private key in it; make one with \
                 `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {shown}`"
            )));
        };
        if label.contains("ENCRYPTED") || text.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(UsageError(format!(
                "--sign-key {shown}: the key is encrypted ({label}) and kiln reads no passphrase; \
                 write an unencrypted copy for the build (`openssl pkcs8 -topk8 -nocrypt -in {shown} -out plain.pem`; \
                 cosign's own encrypted format cannot be read: make a PKCS#8 key with openssl and \
                 `cosign import-key-pair` it for cosign)"
            )));
        }
        let raw = STANDARD.decode(body.as_bytes()).map_err(|e| {
            UsageError(format!(
                "--sign-key {shown}: the PEM body is not base64: {e}"
            ))
        })?;
        let pkcs8 = match label.as_str() {
            "PRIVATE KEY" => raw,
            "EC PRIVATE KEY" => sec1_to_pkcs8(&raw),
            other => {
                return Err(UsageError(format!(
                    "--sign-key {shown}: a `{other}` is not supported: kiln signs with ECDSA P-256 \
                     keys (PKCS#8 `PRIVATE KEY` or `EC PRIVATE KEY`)"
                )));
            }
        };
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng)
            .map_err(|e| {
                UsageError(format!(
                    "--sign-key {shown}: not an ECDSA P-256 private key ({e}); kiln signs with \
                     P-256 keys: `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`"
                ))
            })?;
        let mut spki_body = P256_ALGORITHM.to_vec();
        let mut bits = vec![0u8];
        bits.extend_from_slice(pair.public_key().as_ref());
        spki_body.extend(der(0x03, &bits));
        let spki = der(0x30, &spki_body);
        let b64 = STANDARD.encode(&spki);
        let mut public_pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            public_pem.push_str(&String::from_utf8_lossy(chunk));
            public_pem.push('\n');
        }
        public_pem.push_str("-----END PUBLIC KEY-----\n");
        Ok(SigningKey {
            pkcs8,
            keyid: crate::digest::sha256_hex(&spki),
            public_pem,
        })
    }

    /// ASN.1 DER ECDSA P-256 SHA-256 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.pkcs8, &rng)
            .map_err(|e| anyhow::anyhow!("the signing key was rejected: {e}"))?;
        let sig = pair
            .sign(&rng, message)
            .map_err(|_| anyhow::anyhow!("signing failed"))?;
        Ok(sig.as_ref().to_vec())
    }

    /// A DSSE envelope over `payload`: pretty JSON with a final newline.
    pub fn envelope(&self, payload_type: &str, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
        let sig = self.sign(&pae(payload_type, payload))?;
        let doc = json!({
            "payloadType": payload_type,
            "payload": STANDARD.encode(payload),
            "signatures": [{ "keyid": self.keyid, "sig": STANDARD.encode(sig) }],
        });
        let mut out = serde_json::to_vec_pretty(&doc)?;
        out.push(b'\n');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_dsse_encoding() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn bad_keys_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = SigningKey::load(&dir.path().join("nope.pem")).unwrap_err();
        assert!(missing.0.contains("cannot read"), "{}", missing.0);
        let enc = dir.path().join("enc.pem");
        std::fs::write(
            &enc,
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(SigningKey::load(&enc).unwrap_err().0.contains("encrypted"));
        let rsa = dir.path().join("rsa.pem");
        std::fs::write(
            &rsa,
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(
            SigningKey::load(&rsa)
                .unwrap_err()
                .0
                .contains("not supported")
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(
            SigningKey::load(&junk)
                .unwrap_err()
                .0
                .contains("not an ECDSA P-256")
        );
    }
}
