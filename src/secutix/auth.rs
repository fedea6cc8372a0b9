//! Authentication: an HS256 JWT forged locally, a token from `/tnai/backend-apis/v1/auth`, or (SOAP) a
//! WS-Security UsernameToken.
//!
//! JWT claims follow SecuTix's REST standards page and two public clients: `sub` = institution code,
//! `aud` = virtual operator, `iss` = partner name, `iat`/`exp` in **seconds** (the page's own example token
//! uses seconds although its text says milliseconds), signed with the operator's secret.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    aud: &'a str,
    iss: &'a str,
    iat: i64,
    exp: i64,
}

/// Forges the Bearer token for a REST call.
pub fn forge_jwt(
    institution: &str,
    operator: &str,
    partner: &str,
    secret: &SecretString,
    now_secs: i64,
    lifetime: Duration,
) -> Result<String, String> {
    let claims = Claims {
        sub: institution,
        aud: operator,
        iss: partner,
        iat: now_secs,
        exp: now_secs + i64::try_from(lifetime.as_secs()).unwrap_or(60),
    };
    let key = jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &key,
    )
    .map_err(|e| format!("cannot sign the SecuTix JWT: {e}"))
}

/// The body of a token-endpoint request.
pub fn token_request_body(operator: &str, partner: &str, secret: &SecretString) -> serde_json::Value {
    serde_json::json!({ "operator": operator, "partner": partner, "secret": secret.expose_secret() })
}

/// The WS-Security header of a SOAP request (UsernameToken, PasswordText), values escaped.
pub fn ws_security_header(operator: &str, secret: &SecretString) -> String {
    use quick_xml::escape::escape;
    format!(
        concat!(
            "<wsse:Security soapenv:mustUnderstand=\"1\" ",
            "xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" ",
            "xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\">",
            "<wsse:UsernameToken wsu:Id=\"UsernameToken-secutix-sync\"><wsse:Username>{}</wsse:Username>",
            "<wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText\">{}</wsse:Password>",
            "</wsse:UsernameToken></wsse:Security>"
        ),
        escape(operator),
        escape(secret.expose_secret())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_has_the_documented_claims_in_seconds() {
        let secret = SecretString::from("k3y");
        let token = forge_jwt(
            "MOSA",
            "MOSA_B2C",
            "Partner 1",
            &secret,
            1_600_695_485,
            Duration::from_secs(60),
        )
        .expect("signs");
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_audience(&["MOSA_B2C"]);
        v.validate_exp = false;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &jsonwebtoken::DecodingKey::from_secret(b"k3y"), &v)
                .expect("verifies with the same secret");
        assert_eq!(data.claims["sub"], "MOSA");
        assert_eq!(data.claims["iss"], "Partner 1");
        assert_eq!(data.claims["iat"], 1_600_695_485);
        assert_eq!(data.claims["exp"], 1_600_695_545);
    }

    #[test]
    fn soap_header_escapes_the_password() {
        let h = ws_security_header("CUBE_B2C", &SecretString::from("a<b&c"));
        assert!(h.contains("a&lt;b&amp;c"));
        assert!(h.contains("<wsse:Username>CUBE_B2C</wsse:Username>"));
    }
}
