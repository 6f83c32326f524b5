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
