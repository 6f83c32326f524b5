//! A government Primero v2 (v2.15, docs/registries.md, Primero):
//! `POST /api/v2/cases` with `{"data": {...}}` carrying our client-supplied
//! `data.id`. 204 is a new case (its id is ours); 409 "already exists" for our
//! id means the earlier create stands (a resend after a lost answer). A 422
//! "Invalid Record JSON" lists JSON pointers in `detail`: they, and nothing
//! else of the body, go into the reason. Authentication is one of three
//! modes from config: `basic` (server to server: no session, no CSRF),
//! `session` (cookie + CSRF, [`login`]), `idp-bearer` (client credentials at
//! the identity provider). A refused credential is renewed once: 401, or in
//! session mode a 403 CSRF refusal.
//!
//! A corrected record (`record_version` above 1) updates the case its first
//! version created: `PATCH /api/v2/cases/{id}` with `{"data": {...}}`, which
//! Primero merges, subform rows by `unique_id` (stable across versions). Our
//! `data.id` is the record key, the same for every version, so a correction
//! whose first version's receipt is unknown meets a 409 and patches too:
//! never a second case.

mod login;

use async_trait::async_trait;
use reqwest::header::ACCEPT;
use reqwest::{Client, StatusCode, Url};
use serde_json::{Map, Value, json};

use super::auth::Auth;
use super::classify::{code_at, listed, status_error};
use super::http_client::{Answer, build_client, post_payload};
use super::token_cache::TokenCache;
use super::{
    BuildError, Clock, Outbound, Receipt, ReceiptStatus, SendError, Transport, url_of, url_with,
};
use crate::config::{AuthConfig, DestinationConfig};
use login::Login;

pub(crate) struct Primero {
    url: Url,
    client: Client,
    auth: Auth,
    clock: Clock,
}

impl Primero {
    pub fn new(dest: &DestinationConfig, clock: Clock) -> Result<Primero, BuildError> {
        let (auth, cookies) = match &dest.auth {
            AuthConfig::PrimeroSession {
                login_url,
                user,
                password,
            } => {
                let login = Login {
                    url: login_url.clone(),
                    user: user.clone(),
                    password: password.clone(),
                };
                (Auth::Session(TokenCache::new(login, clock.clone())), true)
            }
            // basic, idp-bearer (client credentials), none.
            _ => (Auth::standard(dest, clock.clone())?, false),
        };
        Ok(Primero {
            url: url_of(dest)?,
            client: build_client(dest, cookies)?,
            auth,
            clock,
        })
    }
}

impl Primero {
    /// `PATCH /api/v2/cases/{id}` with the version's fields (without `id`).
    async fn update(&self, outbound: &Outbound<'_>, case_id: &str) -> Result<Receipt, SendError> {
        let url = url_with(&self.url, false, &[case_id]).ok_or_else(|| SendError::Permanent {
            reason: "the case id does not make a URL".into(),
        })?;
        let mut body: Value =
            serde_json::from_slice(outbound.body).map_err(|_| SendError::Permanent {
                reason: "the rendered case is not JSON".into(),
            })?;
        if let Some(data) = body["data"].as_object_mut() {
            data.remove("id");
        }
        let request = || {
            self.client
                .patch(url.clone())
                .header(ACCEPT, "application/json")
                .json(&body)
        };
        let answer = self.auth.send(&self.client, request, refused).await?;
        if !answer.status.is_success() {
            return receipt(&answer, Some(case_id), &self.clock);
        }
        Ok(Receipt {
            status: ReceiptStatus::Updated,
            reference: Some(case_id.to_string()),
            http_status: answer.status.as_u16(),
            details: Map::new(),
        })
    }
}

#[async_trait]
impl Transport for Primero {
    async fn send(&self, outbound: &Outbound<'_>) -> Result<Receipt, SendError> {
        let ours = client_id(outbound.body);
        if let Some(case) = outbound
            .corrects()
            .and_then(|prior| prior.reference.clone().or_else(|| ours.clone()))
        {
            return self.update(outbound, &case).await;
        }
        let request =
            || post_payload(&self.client, &self.url, outbound).header(ACCEPT, "application/json");
        let answer = self.auth.send(&self.client, request, refused).await?;
        let created = receipt(&answer, ours.as_deref(), &self.clock)?;
        match (&created.status, ours) {
            // A later version whose first one this gateway never saw answered:
            // the case exists under the same id; update it.
            (ReceiptStatus::Duplicate, Some(id)) if outbound.record_version > 1 => {
                self.update(outbound, &id).await
            }
            _ => Ok(created),
        }
    }
}

/// Credentials refused: 401, or a 403 whose error is Rails' CSRF refusal
/// (ActionController::InvalidAuthenticityToken, app/services/error_service.rb)
/// and not CanCan's "Forbidden".
fn refused(answer: &Answer) -> bool {
    match answer.status {
        StatusCode::UNAUTHORIZED => true,
        StatusCode::FORBIDDEN => answer.json().is_some_and(|b| {
            errors(&b).any(|e| e["message"].as_str().is_some_and(|m| m.contains("CSRF")))
        }),
        _ => false,
    }
}

fn errors(body: &Value) -> impl Iterator<Item = &Value> {
    body["errors"].as_array().into_iter().flatten()
}

/// An error's `detail` as reason items: a list of pointers
/// (Errors::InvalidRecordJson) or one field name (model validations).
fn pointers(error: &Value) -> Vec<String> {
    match &error["detail"] {
        Value::Array(items) => items
            .iter()
            .filter_map(|p| code_at(None, p.as_str()))
            .collect(),
        detail => code_at(None, detail.as_str()).into_iter().collect(),
    }
}

/// Our `data.id`: the case id Primero keeps.
fn client_id(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body["data"]["id"].as_str().map(str::to_string)
}

fn receipt(answer: &Answer, ours: Option<&str>, clock: &Clock) -> Result<Receipt, SendError> {
    let body = answer.json();
    let accepted = |reference: Option<String>, details| Receipt {
        status: ReceiptStatus::Accepted,
        reference,
        http_status: answer.status.as_u16(),
        details,
    };
    match (answer.status, ours) {
        (StatusCode::NO_CONTENT, _) => Ok(accepted(ours.map(str::to_string), Map::new())),
        (StatusCode::CONFLICT, Some(id)) => Ok(Receipt {
            status: ReceiptStatus::Duplicate,
            reference: Some(id.to_string()),
            http_status: 409,
            details: Map::new(),
        }),
        (status, _) if status.is_success() => {
            let case = body.as_ref().map(|b| &b["data"]);
            let id = case.and_then(|c| c["id"].as_str()).or(ours);
            let mut details = Map::new();
            if let Some(display) = case.and_then(|c| c["case_id_display"].as_str()) {
                details.insert("case_id_display".into(), json!(display));
            }
            Ok(accepted(id.map(str::to_string), details))
        }
        (status, _) => {
            // `detail` holds the JSON pointers (or a field name) Primero
            // refused; `message` is prose and nothing else is kept.
            let detail = body
                .as_ref()
                .and_then(|b| listed(errors(b).flat_map(pointers)));
            Err(status_error(status, &answer.headers, clock.now(), detail))
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderMap;

    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    const OURS: Option<&str> = Some("7b1e3c1a-4f0d-4b8e-9a51-2d1f0c9e6a11");

    #[test]
    fn created_with_our_id_or_already_there() {
        let clock = Clock::system();
        let r = receipt(&answer(204, ""), OURS, &clock).unwrap();
        assert_eq!(
            (r.status, r.reference.as_deref()),
            (ReceiptStatus::Accepted, OURS)
        );
        let conflict = r#"{"errors":[{"code":409,"resource":"/api/v2/cases","message":"Conflict: A record with this id already exists"}]}"#;
        let r = receipt(&answer(409, conflict), OURS, &clock).unwrap();
        assert_eq!(
            (r.status, r.reference.as_deref()),
            (ReceiptStatus::Duplicate, OURS)
        );
        // Without an id of ours, a conflict is not a duplicate we can vouch for.
        assert!(matches!(
            receipt(&answer(409, conflict), None, &clock),
            Err(SendError::Permanent { .. })
        ));
        let created = r#"{"data":{"id":"c-1","case_id_display":"ab12cd3"}}"#;
        let r = receipt(&answer(200, created), None, &clock).unwrap();
        assert_eq!(r.reference.as_deref(), Some("c-1"));
        assert_eq!(r.details["case_id_display"], "ab12cd3");
    }

    #[test]
    fn validation_errors_name_fields_only() {
        let body = r#"{"errors":[{"status":422,"resource":"/api/v2/cases","message":"Unprocessable Entity","detail":"registration_date"},
                                 {"status":422,"message":"x","detail":"age"}]}"#;
        let e = receipt(&answer(422, body), OURS, &Clock::system()).unwrap_err();
        assert_eq!(
            e,
            SendError::Permanent {
                reason: "status 422: at registration_date; at age".into()
            }
        );
        // v2.15's schema refusal: pointers in a list, never a value.
        let body = r#"{"errors":[{"status":422,"resource":"/api/v2/cases","detail":["/sex","/family_details_section/0/relation"],"message":"Invalid Record JSON"}]}"#;
        let e = receipt(&answer(422, body), OURS, &Clock::system()).unwrap_err();
        assert_eq!(
            e,
            SendError::Permanent {
                reason: "status 422: at /sex; at /family_details_section/0/relation".into()
            }
        );
    }

    #[test]
    fn a_stale_csrf_token_is_a_refusal_but_forbidden_and_validation_are_not() {
        let csrf = r#"{"errors":[{"status":403,"resource":"/api/v2/cases","message":"Can't verify CSRF token authenticity."}]}"#;
        assert!(refused(&answer(403, csrf)));
        assert!(refused(&answer(401, "")));
        let forbidden =
            r#"{"errors":[{"status":403,"resource":"/api/v2/cases","message":"Forbidden"}]}"#;
        assert!(!refused(&answer(403, forbidden)));
        assert!(!refused(&answer(
            422,
            r#"{"errors":[{"message":"Invalid Record JSON","detail":["/age"]}]}"#
        )));
    }

    #[test]
    fn our_id_is_read_from_the_body() {
        assert_eq!(
            client_id(br#"{"data":{"id":"abc","name_first":"x"}}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(client_id(b"not json"), None);
    }
}

/// Hostile Primero answers (#13): creates, conflicts and error lists of any
/// shape read as a receipt or a typed error; reasons hold pointers only,
/// never a message.
#[cfg(test)]
mod tests_arbitrary {
    use proptest::prelude::*;

    use super::*;
    use crate::delivery::transports::arbitrary::{
        answer, body, hostile_value, odd_string, prose, retry_after_value, status, timed,
    };

    /// Primero's error list with hostile parts: many errors, details of any type.
    fn error_list() -> impl Strategy<Value = Vec<u8>> {
        let error = (hostile_value(), prop_oneof![Just(json!("Invalid Record JSON")), hostile_value()], hostile_value())
            .prop_map(|(status, message, detail)| json!({"status": status, "message": message, "detail": detail}));
        (
            prop::collection::vec(error, 0..16),
            0usize..5000,
            any::<bool>(),
        )
            .prop_map(|(mut errors, storm, wrapped)| {
                errors.extend(std::iter::repeat_n(
                    json!({"status": 422, "detail": ["/sex", "/age"]}),
                    storm,
                ));
                let body = if wrapped {
                    json!({"errors": errors})
                } else {
                    json!(errors)
                };
                body.to_string().into_bytes()
            })
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        #[test]
        fn any_answer_is_a_receipt_or_a_typed_error(status in status(), wait in proptest::option::of(retry_after_value()), body in prop_oneof![body(), error_list()], ours in proptest::option::of(odd_string())) {
            let a = answer(status, wait, body);
            timed("primero answer", || {
                let _ = receipt(&a, ours.as_deref(), &Clock::system());
                let _ = refused(&a);
                let _ = client_id(&a.body);
            })?;
        }

        #[test]
        fn no_reason_holds_a_message(words in prose(), status in 400u16..600) {
            let body = json!({"errors": [{"status": status, "resource": "/api/v2/cases",
                "message": words, "detail": ["/sex"]}]});
            let a = answer(status, None, body.to_string().into_bytes());
            let e = receipt(&a, None, &Clock::system()).unwrap_err().to_string().to_lowercase();
            for word in words.split(' ') {
                prop_assert!(!e.contains(&word.to_lowercase()), "{word:?} in {e:?}");
            }
        }
    }
}
