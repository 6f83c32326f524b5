//! Plain HTTPS to a FHIR R4 exchange (R4 http.html). An `Idempotency-Key`
//! header is not FHIR and a FHIR server ignores it, so retries are made safe
//! with what R4 specifies, chosen by the destination's `write`:
//!
//! | write | first version | corrected version (record_version > 1) |
//! |---|---|---|
//! | `conditional-create` | `POST Bundle`, `If-None-Exist: identifier=<system>\|<value>` (#ccreate): 201 created, 200 already there (nothing created) | `PUT Bundle?identifier=<system>\|<value>` (#cond-update): 200 updated, 201 created (the first version never arrived) |
//! | `put` | `PUT Bundle/<id>` (#update, update as create): 201 created, 200 updated in place | the same: 200 updated |
//!
//! The identifier and id are the document's own (`Bundle.identifier`,
//! `Bundle.id`), stable for every resend and version of one source record,
//! read from the bytes sent. A 412 (the condition matches several Bundles)
//! is permanent: only the exchange's operator can tell which one stands.
//! The reference is `Type/id` from `Location`, else from the body.

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Client, Method, RequestBuilder, StatusCode, Url};
use serde_json::{Map, Value, json};

use super::auth::{Auth, unauthorized};
use super::classify::{code_at, listed, status_error};
use super::http_client::{Answer, build_client};
use super::{BuildError, Clock, Outbound, Receipt, ReceiptStatus, SendError, Transport, url_of};
use crate::config::{DestinationConfig, FhirWrite};

pub(crate) struct PlainHttps {
    /// The Bundle endpoint, `[base]/Bundle`.
    url: Url,
    client: Client,
    auth: Auth,
    clock: Clock,
    write: FhirWrite,
}

impl PlainHttps {
    pub fn new(dest: &DestinationConfig, clock: Clock) -> Result<PlainHttps, BuildError> {
        let url = url_of(dest)?;
        if url.cannot_be_a_base() || url.query().is_some() {
            return Err(BuildError::new(
                dest,
                "url must be the exchange's Bundle endpoint ([base]/Bundle), without a query",
            ));
        }
        Ok(PlainHttps {
            url,
            client: build_client(dest, false)?,
            auth: Auth::standard(dest, clock.clone())?,
            clock,
            write: dest.fhir_write,
        })
    }
}

/// What the document says about itself, read from the bytes to be sent.
#[derive(Debug, PartialEq, Eq)]
struct Document {
    /// `Bundle.identifier` as a token search: `system|value`.
    identifier: String,
    /// `Bundle.id`, present when the destination writes with PUT.
    id: Option<String>,
}

impl Document {
    fn read(body: &[u8]) -> Result<Document, SendError> {
        let refuse = |what: &str| SendError::Permanent {
            reason: format!("the rendered document has no {what}"),
        };
        let bundle: Value = serde_json::from_slice(body).map_err(|_| refuse("JSON body"))?;
        let system = bundle["identifier"]["system"].as_str();
        let value = bundle["identifier"]["value"].as_str();
        let (Some(system), Some(value)) = (system, value) else {
            return Err(refuse("Bundle.identifier"));
        };
        Ok(Document {
            identifier: format!("{system}|{value}"),
            id: bundle["id"].as_str().map(str::to_string),
        })
    }
}

/// The R4 interaction one send uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interaction {
    ConditionalCreate,
    ConditionalUpdate,
    Put,
}

impl Interaction {
    fn choose(write: FhirWrite, correction: bool) -> Interaction {
        match write {
            FhirWrite::Put => Interaction::Put,
            FhirWrite::ConditionalCreate if correction => Interaction::ConditionalUpdate,
            FhirWrite::ConditionalCreate => Interaction::ConditionalCreate,
        }
    }

    /// What a success status means for this interaction.
    fn status(self, status: StatusCode, correction: bool) -> ReceiptStatus {
        match (self, status) {
            (_, StatusCode::CREATED) => ReceiptStatus::Accepted,
            // One match: nothing was created; the stored document stands.
            (Interaction::ConditionalCreate, _) => ReceiptStatus::Duplicate,
            (Interaction::ConditionalUpdate, _) => ReceiptStatus::Updated,
            (Interaction::Put, _) if correction => ReceiptStatus::Updated,
            // A resend of the same version replaced the document with itself.
            (Interaction::Put, _) => ReceiptStatus::Duplicate,
        }
    }
}

/// `identifier=<system>|<value>`, encoded as search parameters are in a URL.
fn identifier_condition(identifier: &str) -> String {
    let mut url = Url::parse("search:").expect("a constant URL parses");
    url.query_pairs_mut().append_pair("identifier", identifier);
    url.query().unwrap_or_default().to_string()
}

/// Where and how one interaction is sent.
struct Target {
    method: Method,
    url: Url,
    if_none_exist: Option<String>,
}

impl PlainHttps {
    fn target(&self, interaction: Interaction, document: &Document) -> Result<Target, SendError> {
        let mut url = self.url.clone();
        let (method, if_none_exist) = match interaction {
            Interaction::ConditionalCreate => (
                Method::POST,
                Some(identifier_condition(&document.identifier)),
            ),
            Interaction::ConditionalUpdate => {
                url.set_query(Some(&identifier_condition(&document.identifier)));
                (Method::PUT, None)
            }
            Interaction::Put => {
                let id = document.id.as_deref().ok_or_else(|| SendError::Permanent {
                    reason: "the rendered document has no Bundle.id to PUT".into(),
                })?;
                url.path_segments_mut()
                    .map_err(|()| SendError::Permanent {
                        reason: "the destination url cannot take a path".into(),
                    })?
                    .pop_if_empty()
                    .push(id);
                (Method::PUT, None)
            }
        };
        Ok(Target {
            method,
            url,
            if_none_exist,
        })
    }

    fn request(&self, target: &Target, outbound: &Outbound<'_>) -> RequestBuilder {
        let mut builder = self
            .client
            .request(target.method.clone(), target.url.clone())
            .header(CONTENT_TYPE, outbound.content_type)
            .header(ACCEPT, "application/fhir+json, application/json");
        if let Some(condition) = &target.if_none_exist {
            builder = builder.header("If-None-Exist", condition);
        }
        builder.body(outbound.body.to_vec())
    }
}

#[async_trait]
impl Transport for PlainHttps {
    async fn send(&self, outbound: &Outbound<'_>) -> Result<Receipt, SendError> {
        let document = Document::read(outbound.body)?;
        let correction = outbound.record_version > 1;
        let interaction = Interaction::choose(self.write, correction);
        let target = self.target(interaction, &document)?;
        let request = || self.request(&target, outbound);
        let answer = self.auth.send(&self.client, request, unauthorized).await?;
        receipt(&answer, &self.clock, interaction, correction)
    }
}

fn receipt(
    answer: &Answer,
    clock: &Clock,
    interaction: Interaction,
    correction: bool,
) -> Result<Receipt, SendError> {
    let body = answer.json();
    if !answer.status.is_success() {
        let detail = body.as_ref().and_then(outcome_issues);
        return Err(status_error(
            answer.status,
            &answer.headers,
            clock.now(),
            detail,
        ));
    }
    let status = interaction.status(answer.status, correction);
    let (reference, version) = match location(&answer.headers) {
        Some(found) => found,
        None => from_body(body.as_ref()),
    };
    let mut details = Map::new();
    if let Some(v) = version {
        details.insert("version_id".into(), json!(v));
    }
    Ok(Receipt {
        status,
        reference,
        http_status: answer.status.as_u16(),
        details,
    })
}

/// `Type/id` and the version from `Location`, absolute or relative:
/// `https://host/fhir/Bundle/123/_history/1` gives (`Bundle/123`, `1`).
fn location(headers: &HeaderMap) -> Option<(Option<String>, Option<String>)> {
    let text = headers.get(LOCATION)?.to_str().ok()?;
    let path = text.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (resource, version) = match segments.iter().position(|s| *s == "_history") {
        Some(i) => (&segments[..i], segments.get(i + 1).map(|v| v.to_string())),
        None => (&segments[..], None),
    };
    let [.., kind, id] = resource else {
        return None;
    };
    is_resource_type(kind).then(|| (Some(format!("{kind}/{id}")), version))
}

fn is_resource_type(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && text.chars().all(|c| c.is_ascii_alphanumeric())
}

fn from_body(body: Option<&Value>) -> (Option<String>, Option<String>) {
    let Some(body) = body else {
        return (None, None);
    };
    let kind = body["resourceType"]
        .as_str()
        .filter(|k| is_resource_type(k));
    let id = body["id"].as_str();
    let reference = kind.zip(id).map(|(k, i)| format!("{k}/{i}"));
    let version = body["meta"]["versionId"].as_str().map(str::to_string);
    (reference, version)
}

/// An OperationOutcome's issues as "code at expression" (never diagnostics).
fn outcome_issues(body: &Value) -> Option<String> {
    if body["resourceType"] != "OperationOutcome" {
        return None;
    }
    let issues = body["issue"].as_array()?;
    listed(issues.iter().filter_map(|i| {
        code_at(
            i["code"].as_str(),
            i["expression"].get(0).and_then(Value::as_str),
        )
    }))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn answer(status: u16, location: Option<&str>, body: &str) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(l) = location {
            headers.insert(LOCATION, HeaderValue::from_str(l).unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_reference_comes_from_location_or_the_body() {
        let clock = Clock::system();
        for location in [
            "Bundle/123/_history/1",
            "https://moh.example/fhir/Bundle/123/_history/1",
        ] {
            let r = receipt(
                &answer(201, Some(location), ""),
                &clock,
                Interaction::ConditionalCreate,
                false,
            )
            .unwrap();
            assert_eq!(r.status, ReceiptStatus::Accepted);
            assert_eq!(r.reference.as_deref(), Some("Bundle/123"), "{location}");
            assert_eq!(r.details["version_id"], "1");
        }
        let r = receipt(
            &answer(
                200,
                None,
                r#"{"resourceType":"Bundle","id":"9","meta":{"versionId":"2"}}"#,
            ),
            &clock,
            Interaction::ConditionalCreate,
            false,
        )
        .unwrap();
        assert_eq!(r.status, ReceiptStatus::Duplicate);
        assert_eq!(r.reference.as_deref(), Some("Bundle/9"));
        let r = receipt(&answer(201, Some("/"), ""), &clock, Interaction::Put, false).unwrap();
        assert_eq!(r.reference, None);
    }

    #[test]
    fn an_operation_outcome_gives_codes_and_expressions_only() {
        let body = r#"{"resourceType":"OperationOutcome","issue":[
            {"severity":"error","code":"invariant","diagnostics":"Amina is not allowed","expression":["Bundle.identifier"]},
            {"severity":"error","code":"required","diagnostics":"x","expression":["Bundle.entry[0].resource.subject"]}]}"#;
        let e = receipt(
            &answer(422, None, body),
            &Clock::system(),
            Interaction::ConditionalCreate,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e,
            SendError::Permanent {
                reason: "status 422: invariant at Bundle.identifier; required at Bundle.entry[0].resource.subject".into()
            }
        );
    }

    #[test]
    fn the_interaction_follows_the_write_mode_and_the_version() {
        let choose = Interaction::choose;
        assert_eq!(
            choose(FhirWrite::ConditionalCreate, false),
            Interaction::ConditionalCreate
        );
        assert_eq!(
            choose(FhirWrite::ConditionalCreate, true),
            Interaction::ConditionalUpdate
        );
        assert_eq!(choose(FhirWrite::Put, false), Interaction::Put);
        assert_eq!(choose(FhirWrite::Put, true), Interaction::Put);
        let ok = StatusCode::OK;
        assert_eq!(
            Interaction::ConditionalCreate.status(ok, false),
            ReceiptStatus::Duplicate
        );
        assert_eq!(Interaction::Put.status(ok, false), ReceiptStatus::Duplicate);
        assert_eq!(
            Interaction::ConditionalUpdate.status(StatusCode::CREATED, true),
            ReceiptStatus::Accepted
        );
        assert_eq!(
            Interaction::ConditionalUpdate.status(ok, true),
            ReceiptStatus::Updated
        );
        assert_eq!(Interaction::Put.status(ok, true), ReceiptStatus::Updated);
        assert_eq!(
            identifier_condition("urn:ietf:rfc:3986|urn:uuid:1"),
            "identifier=urn%3Aietf%3Arfc%3A3986%7Curn%3Auuid%3A1"
        );
    }

    #[test]
    fn the_document_is_read_from_the_bytes_sent() {
        let body = br#"{"resourceType":"Bundle","id":"d1","identifier":{"system":"s","value":"v"},
            "entry":[{"resource":{"resourceType":"Composition"}}]}"#;
        assert_eq!(
            Document::read(body).unwrap(),
            Document {
                identifier: "s|v".into(),
                id: Some("d1".into()),
            }
        );
        assert!(matches!(
            Document::read(br#"{"resourceType":"Bundle"}"#),
            Err(SendError::Permanent { .. })
        ));
    }
}

/// Hostile FHIR answers (#13): an OperationOutcome, a transaction-response
/// or anything else, with any Location header, reads as a receipt or a typed
/// error; reasons hold issue codes and expressions, never diagnostics.
#[cfg(test)]
mod tests_arbitrary {
    use proptest::prelude::*;

    use super::*;
    use crate::delivery::transports::arbitrary::{
        answer, body, hostile_value, odd_string, prose, status, timed,
    };

    fn interaction() -> impl Strategy<Value = Interaction> {
        prop::sample::select(
            &[
                Interaction::ConditionalCreate,
                Interaction::ConditionalUpdate,
                Interaction::Put,
            ][..],
        )
    }

    /// An OperationOutcome or a transaction-response Bundle with hostile parts.
    fn fhir_answer() -> BoxedStrategy<Vec<u8>> {
        let issue = (hostile_value(), hostile_value(), hostile_value())
            .prop_map(|(code, expression, diagnostics)| json!({"severity": "error", "code": code, "expression": expression, "diagnostics": diagnostics}));
        // A few hostile issues, then a storm of plain ones (cheap to generate).
        let outcome =
            (prop::collection::vec(issue, 0..16), 0usize..5000).prop_map(|(mut issue, storm)| {
                issue.extend(std::iter::repeat_n(
                    json!({"code": "invariant", "expression": ["Bundle.entry[0]"]}),
                    storm,
                ));
                json!({"resourceType": "OperationOutcome", "issue": issue})
            });
        let entry = (hostile_value(), hostile_value()).prop_map(
            |(status, location)| json!({"response": {"status": status, "location": location}}),
        );
        let response = (prop::collection::vec(entry, 0..16), 0usize..1000, hostile_value(), hostile_value())
            .prop_map(|(mut entry, storm, id, meta)| {
                entry.extend(std::iter::repeat_n(json!({"response": {"status": "201 Created", "location": "Bundle/1/_history/1"}}), storm));
                json!({"resourceType": "Bundle", "type": "transaction-response", "id": id, "meta": meta, "entry": entry})
            });
        prop_oneof![outcome, response]
            .prop_map(|v| v.to_string().into_bytes())
            .boxed()
    }

    fn location_value() -> impl Strategy<Value = String> {
        prop_oneof![
            odd_string(),
            "[A-Za-z0-9/_:.?#-]{0,80}",
            (1usize..2000).prop_map(|n| "Bundle/1/".repeat(n) + "_history/2"),
        ]
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        #[test]
        fn any_answer_is_a_receipt_or_a_typed_error(status in status(), body in prop_oneof![body(), fhir_answer()], header in proptest::option::of(location_value()), interaction in interaction(), correction: bool) {
            let mut a = answer(status, None, body);
            if let Some(l) = header.and_then(|l| reqwest::header::HeaderValue::from_str(&l).ok()) {
                a.headers.insert(LOCATION, l);
            }
            timed("fhir answer", || {
                let _ = receipt(&a, &Clock::system(), interaction, correction);
                let _ = location(&a.headers);
            })?;
        }

        #[test]
        fn any_rendered_document_is_read_or_refused(body in body()) {
            let _ = Document::read(&body);
        }

        #[test]
        fn no_reason_holds_diagnostics(words in prose(), status in 400u16..600) {
            let body = json!({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "invariant", "diagnostics": words,
                 "details": {"text": words}, "expression": ["Bundle.entry[0]"]}]});
            let a = answer(status, None, body.to_string().into_bytes());
            let e = receipt(&a, &Clock::system(), Interaction::Put, false).unwrap_err().to_string().to_lowercase();
            for word in words.split(' ') {
                prop_assert!(!e.contains(&word.to_lowercase()), "{word:?} in {e:?}");
            }
        }
    }
}
