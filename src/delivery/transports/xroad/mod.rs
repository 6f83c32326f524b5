//! X-Road SOAP (the Examplia CRVSO service, examplia-civil-registry/README.md):
//! POST the rendered envelope (its `xrd:id` is per attempt, its
//! `NotificationId` the idempotency key) to the Security Server over mutual
//! TLS. The answer is judged by its body, whatever the HTTP status: a
//! receipt (ACCEPTED, DUPLICATE, REJECTED) or a fault, classified by code.

mod soap;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::{Client, Url};
use serde_json::{Map, json};

use super::auth::{Auth, mode_name, unauthorized};
use super::classify::{code_at, is_code, listed, retry_after_header, seconds, status_error};
use super::http_client::{Answer, build_client, post_payload};
use super::{BuildError, Clock, Outbound, Receipt, ReceiptStatus, SendError, Transport, url_of};
use crate::config::{AuthConfig, DestinationConfig};
use soap::{FaultXml, Problem, ReceiptXml};

pub(crate) struct XRoad {
    url: Url,
    client: Client,
    auth: Auth,
    clock: Clock,
}

impl XRoad {
    pub fn new(dest: &DestinationConfig, clock: Clock) -> Result<XRoad, BuildError> {
        // Security Servers forward no HTTP header but Content-Type and
        // SOAPAction: the client is known by its TLS certificate.
        if !matches!(dest.auth, AuthConfig::None) {
            return Err(BuildError::new(
                dest,
                format!(
                    "auth mode {} cannot cross X-Road; use none and tls.client_cert_file",
                    mode_name(&dest.auth)
                ),
            ));
        }
        Ok(XRoad {
            url: url_of(dest)?,
            client: build_client(dest, false)?,
            auth: Auth::None,
            clock,
        })
    }
}

#[async_trait]
impl Transport for XRoad {
    async fn send(&self, outbound: &Outbound<'_>) -> Result<Receipt, SendError> {
        // "Accepted notifications cannot be amended here: contact the
        // registrar" (the service's README, receipts and idempotency, rule 5);
        // a second NotificationId would be a second notification of the birth.
        if let Some(prior) = outbound.corrects() {
            return Err(SendError::NeedsRegistryProcess {
                reason: "the service takes no amendment of an accepted notification: the registrar amends it".into(),
                reference: prior.reference.clone(),
            });
        }
        let request =
            || post_payload(&self.client, &self.url, outbound).header("SOAPAction", "\"\"");
        let answer = self.auth.send(&self.client, request, unauthorized).await?;
        judge(&answer, &self.clock)
    }
}

fn judge(answer: &Answer, clock: &Clock) -> Result<Receipt, SendError> {
    let status = answer.status.as_u16();
    match soap::read(&answer.body) {
        Some(soap::Answer::Receipt(r)) => receipt(r, status),
        Some(soap::Answer::Fault(f)) => Err(fault(&f, status, &answer.headers, clock)),
        None if answer.status.is_success() => Err(SendError::Retryable {
            // The outcome is unknown; a resend is answered DUPLICATE if it was stored.
            reason: format!("status {status} without a receipt or fault"),
            retry_after: None,
        }),
        None => Err(status_error(
            answer.status,
            &answer.headers,
            clock.now(),
            None,
        )),
    }
}

fn receipt(r: ReceiptXml, http_status: u16) -> Result<Receipt, SendError> {
    let status = match r.status.as_str() {
        "ACCEPTED" => ReceiptStatus::Accepted,
        "DUPLICATE" => ReceiptStatus::Duplicate,
        "REJECTED" => {
            let errors = r.problems.iter().filter(|p| p.severity == "ERROR");
            let reference = r.reference.as_deref().filter(|s| is_code(s));
            let mut reason = format!("status {http_status}: REJECTED");
            if let Some(reference) = reference {
                reason.push_str(&format!(" ({reference})"));
            }
            if let Some(problems) = problem_list(errors) {
                reason.push_str(&format!(": {problems}"));
            }
            return Err(SendError::Permanent { reason });
        }
        _ => {
            return Err(SendError::Retryable {
                reason: format!("status {http_status}: receipt with an unknown status"),
                retry_after: None,
            });
        }
    };
    let mut details = Map::new();
    if let Some(at) = r.received_at {
        details.insert("received_at".into(), json!(at));
    }
    if let Some(id) = r.notification_id {
        details.insert("notification_id".into(), json!(id));
    }
    let warnings: Vec<String> = r
        .problems
        .iter()
        .filter(|p| is_code(&p.code))
        .map(|p| p.code.clone())
        .collect();
    if !warnings.is_empty() {
        details.insert("warnings".into(), json!(warnings));
    }
    Ok(Receipt {
        status,
        reference: r.reference,
        http_status,
        details,
    })
}

fn problem_list<'a>(problems: impl Iterator<Item = &'a Problem>) -> Option<String> {
    listed(problems.filter_map(|p| code_at(Some(&p.code), Some(&p.path))))
}

/// A fault by its code (README §4): limits and outages wait, internal errors
/// retry (a resend is answered ACCEPTED or DUPLICATE), the client's own
/// faults are permanent. Security Server faults: network trouble retries,
/// access errors are permanent.
fn fault(f: &FaultXml, http_status: u16, headers: &HeaderMap, clock: &Clock) -> SendError {
    let mut reason = format!("status {http_status}: {}", safe(&f.code));
    if let Some(limit) = f.limit.as_deref().filter(|l| is_code(l)) {
        reason.push_str(&format!(" {limit}"));
    }
    if let Some(incident) = f.incident.as_deref().filter(|i| is_code(i)) {
        reason.push_str(&format!(" (incident {incident})"));
    }
    if let Some(problems) = problem_list(f.problems.iter()) {
        reason.push_str(&format!(": {problems}"));
    }
    let wait = f
        .retry_after_seconds
        .map(seconds)
        .or_else(|| retry_after_header(headers, clock.now()));
    let code = f.code.as_str();
    if code == "Server.RateLimited" {
        SendError::RateLimited {
            reason,
            retry_after: wait,
        }
    } else if code.starts_with("Server.ClientProxy.") || code.starts_with("Server.ServerProxy.") {
        if is_network_fault(code) {
            SendError::Retryable {
                reason,
                retry_after: wait,
            }
        } else {
            SendError::Permanent { reason }
        }
    } else if code.starts_with("Server.") {
        // Server.Unavailable, Server.InternalError and any later server fault.
        SendError::Retryable {
            reason,
            retry_after: wait,
        }
    } else {
        // Client.* and anything unknown: the same bytes cannot succeed.
        SendError::Permanent { reason }
    }
}

/// X-Road's own codes for trouble on the way, as opposed to access errors
/// (`AccessDenied`, `UnknownService`, ...).
fn is_network_fault(code: &str) -> bool {
    const TRANSIENT: [&str; 6] = [
        "NetworkError",
        "ServiceFailed",
        "Timeout",
        "IOError",
        "DatabaseError",
        "OutdatedGlobalConf",
    ];
    code.split('.').any(|part| TRANSIENT.contains(&part))
}

fn safe(code: &str) -> &str {
    if is_code(code) {
        code
    } else {
        "unreadable faultcode"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::StatusCode;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    use super::*;

    fn fault_xml(code: &str, detail: &str) -> Vec<u8> {
        format!(
            r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><S:Fault><faultcode>{code}</faultcode><faultstring>text</faultstring><detail><bn:RegistryFault xmlns:bn="urn:examplia:crvs:birth-notification:1"><bn:IncidentId>i-1</bn:IncidentId>{detail}</bn:RegistryFault></detail></S:Fault></S:Body></S:Envelope>"#
        )
        .into_bytes()
    }

    fn receipt_xml(status: &str, problems: &str) -> Vec<u8> {
        format!(
            r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><bn:submitBirthNotificationResponse xmlns:bn="urn:examplia:crvs:birth-notification:1"><bn:BirthNotificationReceipt><bn:NotificationId>n-1</bn:NotificationId><bn:RegistryReference>EXA-BN-2026-00000001</bn:RegistryReference><bn:ReceivedAt>2026-10-19T10:00:00.000+02:00</bn:ReceivedAt><bn:Status>{status}</bn:Status>{problems}</bn:BirthNotificationReceipt></bn:submitBirthNotificationResponse></S:Body></S:Envelope>"#
        )
        .into_bytes()
    }

    fn answer(status: u16, body: Vec<u8>, retry_after: Option<&str>) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(r).unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body,
        }
    }

    fn judged(status: u16, body: Vec<u8>, retry_after: Option<&str>) -> Result<Receipt, SendError> {
        judge(&answer(status, body, retry_after), &Clock::system())
    }

    #[test]
    fn receipts_give_the_registry_reference_and_received_at() {
        let r = judged(200, receipt_xml("ACCEPTED", ""), None).unwrap();
        assert_eq!(r.status, ReceiptStatus::Accepted);
        assert_eq!(r.reference.as_deref(), Some("EXA-BN-2026-00000001"));
        assert_eq!(r.details["received_at"], "2026-10-19T10:00:00.000+02:00");
        let r = judged(200, receipt_xml("DUPLICATE", ""), None).unwrap();
        assert_eq!(r.status, ReceiptStatus::Duplicate);
    }

    #[test]
    fn a_rejected_receipt_is_permanent_with_error_codes_and_paths() {
        let problems = "<bn:Problem><bn:Code>DATE_IN_FUTURE</bn:Code><bn:Severity>ERROR</bn:Severity><bn:Path>/BirthNotification/Child/DateOfBirth</bn:Path><bn:Message>Date of birth 2026-11-03 is later</bn:Message></bn:Problem>\
            <bn:Problem><bn:Code>LATE_NOTIFICATION</bn:Code><bn:Severity>WARNING</bn:Severity><bn:Path>/BirthNotification</bn:Path><bn:Message>x</bn:Message></bn:Problem>";
        let e = judged(200, receipt_xml("REJECTED", problems), None).unwrap_err();
        assert_eq!(
            e,
            SendError::Permanent {
                reason: "status 200: REJECTED (EXA-BN-2026-00000001): DATE_IN_FUTURE at /BirthNotification/Child/DateOfBirth".into()
            }
        );
        assert!(!e.to_string().contains("2026-11-03"));
    }

    #[test]
    fn faults_are_classified_by_code() {
        let limited = judged(
            500,
            fault_xml(
                "Server.RateLimited",
                "<bn:LimitExceeded>RATE</bn:LimitExceeded><bn:RetryAfterSeconds>3</bn:RetryAfterSeconds>",
            ),
            None,
        );
        assert_eq!(
            limited.unwrap_err(),
            SendError::RateLimited {
                reason: "status 500: Server.RateLimited RATE (incident i-1)".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        // Maintenance: the detail's seconds, else the header's.
        let unavailable =
            judged(503, fault_xml("Server.Unavailable", ""), Some("120")).unwrap_err();
        assert!(matches!(unavailable, SendError::Retryable { .. }));
        assert_eq!(unavailable.retry_after(), Some(Duration::from_secs(120)));
        let with_detail = judged(
            503,
            fault_xml(
                "Server.Unavailable",
                "<bn:RetryAfterSeconds>60</bn:RetryAfterSeconds>",
            ),
            Some("120"),
        );
        assert_eq!(
            with_detail.unwrap_err().retry_after(),
            Some(Duration::from_secs(60))
        );
        for retryable in [
            "Server.InternalError",
            "SOAP-ENV:Server.InternalError",
            "Server.ServerProxy.NetworkError",
            "Server.ClientProxy.ServiceFailed.HttpError",
        ] {
            assert!(
                matches!(
                    judged(500, fault_xml(retryable, ""), None),
                    Err(SendError::Retryable { .. })
                ),
                "{retryable}"
            );
        }
        for permanent in [
            "Client.SchemaInvalid",
            "Client.Duplicate",
            "Client.AgencyNotAuthorised",
            "Client.MessageTooLarge",
            "Server.ServerProxy.AccessDenied",
            "Server.ClientProxy.UnknownService",
            "Whatever",
        ] {
            assert!(
                matches!(
                    judged(500, fault_xml(permanent, ""), None),
                    Err(SendError::Permanent { .. })
                ),
                "{permanent}"
            );
        }
    }

    #[test]
    fn without_a_soap_body_the_status_decides() {
        assert!(matches!(
            judged(502, b"<html>Bad Gateway</html>".to_vec(), None),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            judged(200, b"".to_vec(), None),
            Err(SendError::Retryable { .. })
        ));
        assert!(matches!(
            judged(404, b"".to_vec(), None),
            Err(SendError::Permanent { .. })
        ));
    }
}

/// Hostile SOAP answers (#13): any bytes, and envelopes with entities,
/// DOCTYPEs, deep nesting, long texts and problem storms, are judged as a
/// receipt or a typed error within the bound; entities never expand, and no
/// reason holds a faultstring or a problem's message.
#[cfg(test)]
mod tests_arbitrary {
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;
    use crate::delivery::transports::arbitrary::{
        self, odd_string, prose, retry_after_value, status, timed,
    };

    const OPEN: &str = r#"<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" xmlns:bn="urn:examplia:crvs:birth-notification:1"><S:Body>"#;
    const CLOSE: &str = "</S:Body></S:Envelope>";

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    fn problem(code: &str, severity: &str, path: &str, message: &str) -> String {
        format!(
            "<bn:Problem><bn:Code>{}</bn:Code><bn:Severity>{}</bn:Severity><bn:Path>{}</bn:Path><bn:Message>{}</bn:Message></bn:Problem>",
            escape(code),
            escape(severity),
            escape(path),
            escape(message)
        )
    }

    /// A receipt or a fault with hostile text in every element, and up to
    /// thousands of problems.
    fn envelope() -> BoxedStrategy<String> {
        let text = prop_oneof![
            odd_string(),
            Just("ACCEPTED".to_string()),
            Just("REJECTED".to_string()),
            Just("Server.RateLimited".to_string()),
            Just("ERROR".to_string())
        ];
        let problems = (
            prop::collection::vec(
                (text.clone(), text.clone(), text.clone(), odd_string()),
                0..8,
            ),
            0usize..5000,
        )
            .prop_map(|(ps, copies)| {
                let one: String = ps.iter().map(|(c, s, p, m)| problem(c, s, p, m)).collect();
                let storm =
                    problem("SCHEMA_VIOLATION", "ERROR", "/BirthNotification", "x").repeat(copies);
                one + &storm
            })
            .boxed();
        let receipt = (text.clone(), text.clone(), text.clone(), problems.clone()).prop_map(|(status, reference, at, problems)| {
            format!("<bn:submitBirthNotificationResponse><bn:BirthNotificationReceipt><bn:NotificationId>n-1</bn:NotificationId><bn:RegistryReference>{}</bn:RegistryReference><bn:ReceivedAt>{}</bn:ReceivedAt><bn:Status>{}</bn:Status>{problems}</bn:BirthNotificationReceipt></bn:submitBirthNotificationResponse>",
                escape(&reference), escape(&at), escape(&status))
        });
        let fault = (text.clone(), odd_string(), text.clone(), prop_oneof![odd_string(), any::<u64>().prop_map(|n| n.to_string()), Just("99999999999999999999999".to_string()), Just("-1".to_string())], problems)
            .prop_map(|(code, faultstring, limit, secs, problems)| {
                format!("<S:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring><detail><bn:RegistryFault><bn:IncidentId>i-1</bn:IncidentId><bn:LimitExceeded>{}</bn:LimitExceeded><bn:RetryAfterSeconds>{}</bn:RetryAfterSeconds>{problems}</bn:RegistryFault></detail></S:Fault>",
                    escape(&code), escape(&faultstring), escape(&limit), escape(&secs))
            });
        prop_oneof![receipt, fault]
            .prop_map(|body| format!("{OPEN}{body}{CLOSE}"))
            .boxed()
    }

    /// Documents built to hurt a parser: entity expansion (billion laughs,
    /// external entities), nesting far past the limit, long runs.
    fn attack() -> impl Strategy<Value = String> {
        prop_oneof![
            (1usize..=10).prop_map(|levels| {
                let mut dtd = String::from(r#"<!ENTITY l0 "lol">"#);
                for i in 1..=levels {
                    dtd.push_str(&format!("<!ENTITY l{i} \"{}\">", format!("&l{};", i - 1).repeat(10)));
                }
                format!("<?xml version=\"1.0\"?><!DOCTYPE S:Envelope [{dtd}]>{OPEN}<bn:x>&l{levels};</bn:x>{CLOSE}")
            }),
            Just(format!(r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>{OPEN}<bn:x>&e;</bn:x>{CLOSE}"#)),
            Just(format!("{OPEN}<bn:x>&e;&#0;&#x110000;&#xD800;&;&#;&amp</bn:x>{CLOSE}")),
            (1usize..100_000).prop_map(|n| format!("{OPEN}{}{}{CLOSE}", "<bn:a>".repeat(n), "</bn:a>".repeat(n))),
            (1usize..100_000).prop_map(|n| format!("{OPEN}{}", "<bn:a>".repeat(n))),
            (1usize..50_000).prop_map(|n| format!("{OPEN}<S:Fault><faultcode>{}</faultcode></S:Fault>{CLOSE}", "&amp;".repeat(n))),
            (1usize..20_000).prop_map(|n| format!("{OPEN}<bn:a {}/>{CLOSE}", (0..n).map(|i| format!("a{i}=\"1\" ")).collect::<String>())),
            (1usize..20_000).prop_map(|n| format!("{OPEN}<bn:a {}>{CLOSE}", (0..n).map(|i| format!("xmlns:p{i}=\"urn:{i}\" ")).collect::<String>())),
            (1usize..100_000).prop_map(|n| format!("{OPEN}<![CDATA[{}]]>{CLOSE}", "]".repeat(n))),
            (1usize..100_000).prop_map(|n| format!("{OPEN}{}{CLOSE}", "<!-- c -->".repeat(n))),
        ]
    }

    /// A valid envelope cut short or with one byte changed.
    fn near_valid() -> BoxedStrategy<Vec<u8>> {
        (
            envelope(),
            any::<Index>(),
            proptest::option::of(any::<u8>()),
        )
            .prop_map(|(xml, at, byte)| {
                let mut bytes = xml.into_bytes();
                let n = at.index(bytes.len());
                match byte {
                    Some(b) => bytes[n] = b,
                    None => bytes.truncate(n),
                }
                bytes
            })
            .boxed()
    }

    fn judged(
        status: u16,
        wait: Option<Vec<u8>>,
        body: Vec<u8>,
    ) -> Result<Result<Receipt, SendError>, TestCaseError> {
        let a = arbitrary::answer(status, wait, body);
        // On a small stack of its own: a reader that recursed per element
        // would overflow here, not in the test's input generation.
        timed("judge", || {
            std::thread::scope(|s| {
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, || judge(&a, &Clock::system()))
                    .expect("a thread")
                    .join()
                    .expect("judge does not panic")
            })
        })
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        #[test]
        fn any_answer_is_a_receipt_or_a_typed_error(status in status(), wait in proptest::option::of(retry_after_value()), body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..1024),
            envelope().prop_map(String::into_bytes),
            near_valid(),
        ]) {
            let _ = judged(status, wait, body)?;
        }

        #[test]
        fn no_reason_holds_a_faultstring_or_a_message(words in prose(), fault: bool) {
            let body = if fault {
                format!("{OPEN}<S:Fault><faultcode>Client.SchemaInvalid</faultcode><faultstring>{words}</faultstring><detail><bn:RegistryFault>{}</bn:RegistryFault></detail></S:Fault>{CLOSE}", problem("SCHEMA_VIOLATION", "ERROR", "/BirthNotification", &words))
            } else {
                format!("{OPEN}<bn:submitBirthNotificationResponse><bn:BirthNotificationReceipt><bn:Status>REJECTED</bn:Status>{}</bn:BirthNotificationReceipt></bn:submitBirthNotificationResponse>{CLOSE}", problem("DATE_IN_FUTURE", "ERROR", "/BirthNotification", &words))
            };
            let e = judged(200, None, body.into_bytes())?.unwrap_err().to_string().to_lowercase();
            for word in words.split(' ') {
                prop_assert!(!e.contains(&word.to_lowercase()), "{word:?} in {e:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]

        /// Nothing an attack builds is read as an answer, and entities never expand.
        #[test]
        fn attacks_are_unreadable_in_bounded_time(xml in attack()) {
            let read = timed("soap::read", || soap::read(xml.as_bytes()))?;
            if xml.contains("<!DOCTYPE") || xml.contains("&e;") {
                prop_assert!(read.is_none());
            }
            let judged = judged(200, None, xml.into_bytes())?;
            prop_assert!(judged.is_err());
        }
    }
}
