//! Artifact signing, interoperable with Turborepo's: when a shared secret is
//! configured, every upload carries an `x-artifact-tag` and every download
//! must carry one that verifies. The server only stores and returns the tag;
//! checking it is the client's job, because the server is not trusted.
//!
//! The tag is `base64(HMAC-SHA256(key, metadata ++ body))` with the standard
//! alphabet and padding, where `metadata` is the compact JSON
//! `{"hash":"<artifact id>","teamId":"<team>"}` (keys in that order, no
//! spaces) and `key` the secret's bytes. This is the layout Turborepo's
//! client uses, so a Turborepo and a vp client that share the secret agree.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a downloaded artifact's tag does not prove it came from a holder of
/// the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureError {
    #[error("is not signed, and a signature key is configured")]
    Missing,
    #[error("has a signature tag that is not valid base64")]
    NotBase64,
    #[error("has a signature that does not verify with the configured key")]
    Mismatch,
}

/// The shared secret (`VP_REMOTE_CACHE_SIGNATURE_KEY`). Never printed.
#[derive(Clone)]
pub(crate) struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    pub(crate) fn new(secret: Vec<u8>) -> Self {
        Self(secret)
    }

    fn mac(&self, artifact_id: &str, team: &str, body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length (long ones are hashed first), so
        // `new_from_slice` cannot fail for HMAC-SHA256.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of every length"),
        };
        mac.update(metadata(artifact_id, team).as_bytes());
        mac.update(body);
        mac
    }

    /// The `x-artifact-tag` value for an upload.
    pub(crate) fn tag(&self, artifact_id: &str, team: &str, body: &[u8]) -> String {
        STANDARD.encode(self.mac(artifact_id, team, body).finalize().into_bytes())
    }

    /// Checks a download's tag, in constant time (`Mac::verify_slice`
    /// compares with `subtle`), so a forger learns nothing from timing.
    pub(crate) fn verify(
        &self,
        artifact_id: &str,
        team: &str,
        body: &[u8],
        tag: Option<&str>,
    ) -> Result<(), SignatureError> {
        let tag = tag.ok_or(SignatureError::Missing)?;
        let expected = STANDARD
            .decode(tag.trim())
            .map_err(|_| SignatureError::NotBase64)?;
        self.mac(artifact_id, team, body)
            .verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// `{"hash":…,"teamId":…}` exactly as serde_json writes a struct with these
/// two fields in this order (strings JSON-escaped).
fn metadata(artifact_id: &str, team: &str) -> String {
    #[derive(serde::Serialize)]
    struct Metadata<'a> {
        hash: &'a str,
        #[serde(rename = "teamId")]
        team_id: &'a str,
    }
    // Serialising two strings into JSON cannot fail.
    serde_json::to_string(&Metadata {
        hash: artifact_id,
        team_id: team,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently with Node's `crypto.createHmac("sha256",
    /// "secret-key").update('{"hash":"0123456789abcdef","teamId":"team_vp"}')
    /// .update("artifact body").digest("base64")`.
    const KNOWN_TAG: &str = "pvdyy19OtPFsyeM/aop6n10b5giiPR/pnYUOOD11pE4=";

    #[test]
    fn known_vector_matches_an_independent_implementation() {
        let key = SigningKey::new(b"secret-key".to_vec());
        assert_eq!(
            metadata("0123456789abcdef", "team_vp"),
            r#"{"hash":"0123456789abcdef","teamId":"team_vp"}"#
        );
        assert_eq!(
            key.tag("0123456789abcdef", "team_vp", b"artifact body"),
            KNOWN_TAG
        );
    }

    #[test]
    fn round_trip_and_rejections() {
        let key = SigningKey::new(b"k".to_vec());
        let tag = key.tag("abc", "t", b"body");
        assert_eq!(key.verify("abc", "t", b"body", Some(&tag)), Ok(()));
        assert_eq!(
            key.verify("abc", "t", b"bodY", Some(&tag)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            key.verify("abd", "t", b"body", Some(&tag)),
            Err(SignatureError::Mismatch),
            "the tag binds the artifact id"
        );
        assert_eq!(
            key.verify("abc", "u", b"body", Some(&tag)),
            Err(SignatureError::Mismatch),
            "the tag binds the team"
        );
        let other = SigningKey::new(b"other".to_vec());
        assert_eq!(
            other.verify("abc", "t", b"body", Some(&tag)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            key.verify("abc", "t", b"body", None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            key.verify("abc", "t", b"body", Some("%%%")),
            Err(SignatureError::NotBase64)
        );
    }

    #[test]
    fn team_is_json_escaped() {
        assert_eq!(metadata("h", "a\"b"), r#"{"hash":"h","teamId":"a\"b"}"#);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = SigningKey::new(b"hunter2".to_vec());
        assert!(!format!("{key:?}").contains("hunter2"));
    }
}
