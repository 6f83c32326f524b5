//! The Examplia CRVSO birth-notification service over X-Road
//! (../shared/specs/examplia-civil-registry/README.md): SOAP 1.1 at `/`,
//! X-Road message protocol 4.0 header copied back with `requestHash`,
//! receipts `ACCEPTED` / `DUPLICATE` / `REJECTED`, faults
//! `Client.SchemaInvalid` (with each Problem), `Client.MessageTooLarge`,
//! `Client.AgencyNotAuthorised`, `Client.Duplicate`, `Server.RateLimited`,
//! `Server.Unavailable`, `Server.InternalError`.
//!
//! The mock plays both the client's Security Server (header checks answer
//! X-Road faults without a `RegistryFault`) and the registry. The XSD check
//! runs `xmllint` on a copy of the body re-serialised one element per line,
//! so each error's line names the element of its Problem `Path`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::Method;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use sha2::{Digest, Sha512};

use super::arrivals::{Endpoint, Outcome};
use super::examplia_rules::{self, BN, Problem, Severity, indexed, step};
use super::limits::ext;
use super::records::{Records, StoredRecord};
use super::server::{MockRequest, Refusal, Registry, Reply};
use super::token::{Ids, base64};
use super::xml::{self, Element, escape_attr, escape_text};
use super::{EXAMPLIA_XSD, ExampliaSettings, MockConfig, StartError, XsdCheck, lock};

pub(crate) const SERVICE_PATH: &str = "/";
const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const XRD: &str = "http://x-road.eu/xsd/xroad.xsd";
const ID: &str = "http://x-road.eu/xsd/identifiers";
const MAX_BYTES: usize = 256 * 1024;
const HEADER_ORDER: [&str; 6] = [
    "client",
    "service",
    "id",
    "userId",
    "issue",
    "protocolVersion",
];
const SERVICE: [&str; 4] = ["GOV", "70000001", "crvs", "submitBirthNotification"];

/// The XSD xmllint reads; a temporary copy of the embedded one is removed on drop.
struct XsdFile {
    path: PathBuf,
    temporary: bool,
}

impl Drop for XsdFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub(crate) struct Examplia {
    settings: ExampliaSettings,
    xsd: Option<XsdFile>,
    ids: Ids,
    references: AtomicU64,
    /// Requests with the same NotificationId are processed one at a time.
    serial: Mutex<()>,
    records: Records,
}

/// How a request is answered when it cannot be registered.
struct FaultReply {
    status: u16,
    code: &'static str,
    text: String,
    /// None for Security Server faults, which carry no `RegistryFault`.
    detail: Option<Box<RegistryFault>>,
    outcome: Outcome,
}

#[derive(Default)]
struct RegistryFault {
    notification_id: Option<String>,
    limit: Option<&'static str>,
    retry_after: Option<u64>,
    reference: Option<String>,
    problems: Vec<Problem>,
}

fn security_fault(code: &'static str, text: &str) -> FaultReply {
    FaultReply {
        status: 500,
        code,
        text: text.into(),
        detail: None,
        outcome: Outcome::Rejected,
    }
}

fn schema_invalid(notification_id: Option<String>, problems: Vec<Problem>) -> FaultReply {
    let n = problems.len();
    FaultReply {
        status: 500,
        code: "Client.SchemaInvalid",
        text: format!(
            "The request is not valid against birth-notification-v1.xsd ({n} problem{}).",
            if n == 1 { "" } else { "s" }
        ),
        detail: Some(Box::new(RegistryFault {
            notification_id,
            problems,
            ..RegistryFault::default()
        })),
        outcome: Outcome::Rejected,
    }
}

fn schema_problem(path: &str, message: impl Into<String>) -> Problem {
    Problem {
        code: "SCHEMA_VIOLATION",
        severity: Severity::Error,
        path: path.into(),
        message: message.into(),
    }
}

impl Examplia {
    pub fn new(config: &MockConfig) -> Result<Examplia, StartError> {
        let settings = config.examplia.clone();
        let available = xmllint_available();
        let xsd = match (settings.xsd, available) {
            (XsdCheck::Off, _) | (XsdCheck::Auto, false) => None,
            (XsdCheck::Required, false) => return Err(StartError::XmllintMissing),
            (_, true) => Some(xsd_file(settings.xsd_path.as_deref()).map_err(StartError::Xsd)?),
        };
        if settings.xsd == XsdCheck::Auto && !available {
            tracing::warn!(
                "xmllint not found (apt-get install libxml2-utils): the examplia mock \
                 checks structure only, not the XSD"
            );
        }
        Ok(Examplia {
            settings,
            xsd,
            ids: Ids::new(config.seed),
            references: AtomicU64::new(0),
            serial: Mutex::new(()),
            records: Records::default(),
        })
    }

    fn submit(&self, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        let content_type = req
            .header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !content_type.starts_with("text/xml") {
            let problem = schema_problem(
                "/Envelope",
                "Send one SOAP 1.1 envelope as text/xml; attachments are not accepted.",
            );
            return self.fault_reply(None, req, schema_invalid(None, vec![problem]), now);
        }
        let root = match xml::parse(&req.body) {
            Ok(root) => root,
            Err(e) => {
                let problem = schema_problem("/Envelope", e.message());
                return self.fault_reply(None, req, schema_invalid(None, vec![problem]), now);
            }
        };
        let text = std::str::from_utf8(xml::strip_bom(&req.body)).unwrap_or_default();
        let envelope = match Envelope::read(&root, text) {
            Ok(envelope) => envelope,
            Err(fault) => return self.fault_reply(None, req, fault, now),
        };
        match self.register(&envelope, now) {
            Ok(receipt) => self.receipt_reply(&envelope, req, receipt),
            Err(fault) => self.fault_reply(Some(&envelope), req, fault, now),
        }
    }

    fn register(&self, envelope: &Envelope<'_>, now: DateTime<Utc>) -> Result<Receipt, FaultReply> {
        self.check_header(envelope)?;
        let wrapper = envelope.wrapper()?;
        let notification_id = wrapper
            .child(BN, "BirthNotification")
            .and_then(|b| b.child_text(BN, "NotificationId"))
            .filter(|id| is_lower_uuid(id))
            .map(str::to_string);
        let problems = self.schema_problems(wrapper);
        if !problems.is_empty() {
            return Err(schema_invalid(notification_id, problems));
        }
        let (Some(bn), Some(id)) = (wrapper.child(BN, "BirthNotification"), notification_id) else {
            let problem = schema_problem(
                "/BirthNotification/NotificationId",
                "A lower-case UUID is required.",
            );
            return Err(schema_invalid(None, vec![problem]));
        };
        self.check_agency(bn, envelope, &id)?;
        let _one_at_a_time = lock(&self.serial);
        let digest = bn.digest();
        if let Some(existing) = self.records.get(&id) {
            return duplicate(existing.record, &digest, id);
        }
        let signatures = examplia_rules::birth_signatures(bn);
        let possible_duplicate = self
            .records
            .find(|replay| {
                replay["signatures"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|v| signatures.iter().any(|o| v == o)))
            })
            .is_some();
        let problems = examplia_rules::check(bn, now, &self.settings, possible_duplicate);
        let reference = self.next_reference(now);
        let received_at = now;
        let rejected = problems.iter().any(|p| p.severity == Severity::Error);
        if !rejected {
            let record = StoredRecord {
                key: id.clone(),
                reference: reference.clone(),
                received_at,
                digest,
            };
            let replay = json!({"signatures": signatures});
            // The serial lock makes the key free here.
            let _ = self
                .records
                .insert(record, envelope.text.as_bytes(), replay);
        }
        Ok(Receipt {
            notification_id: id,
            reference,
            received_at,
            status: if rejected { "REJECTED" } else { "ACCEPTED" },
            problems,
        })
    }

    /// The header rules of X-Road and of this service (README §4).
    fn check_header(&self, envelope: &Envelope<'_>) -> Result<(), FaultReply> {
        let header = envelope.header.ok_or_else(|| {
            security_fault("Client.MissingHeaderField", "The SOAP header is missing.")
        })?;
        for name in ["client", "service", "id", "protocolVersion"] {
            if header
                .child(XRD, name)
                .is_none_or(|e| e.text.trim().is_empty() && e.children.is_empty())
            {
                return Err(security_fault(
                    "Client.MissingHeaderField",
                    &format!("Required field xrd:{name} is missing from the header."),
                ));
            }
        }
        if header.child_text(XRD, "protocolVersion").map(str::trim) != Some("4.0") {
            return Err(security_fault(
                "Client.InvalidProtocolVersion",
                "xrd:protocolVersion must be 4.0.",
            ));
        }
        let client = header.child(XRD, "client").filter(|c| {
            matches!(c.attrs.iter().find(|a| a.local == "objectType" && a.ns.as_deref() == Some(ID)),
                Some(a) if a.value == "SUBSYSTEM" || a.value == "MEMBER")
        });
        if client.is_none() {
            return Err(security_fault(
                "Client.InvalidClientIdentifier",
                "xrd:client is not a MEMBER or SUBSYSTEM identifier.",
            ));
        }
        if !self.is_this_service(header) {
            return Err(security_fault(
                "Server.ServerProxy.UnknownService",
                "The service in xrd:service is not provided here.",
            ));
        }
        let mut header_problems = Vec::new();
        if header.child(XRD, "requestHash").is_some() {
            header_problems.push(schema_problem(
                "/Envelope/Header/requestHash",
                "Never send requestHash: the Security Server adds it to responses.",
            ));
        }
        if !in_order(header) {
            header_problems.push(schema_problem("/Envelope/Header", "Send the header fields in the order client, service, id, userId, issue, protocolVersion."));
        }
        let user_id = header.child_text(XRD, "userId").unwrap_or_default();
        if !valid_user_id(user_id) {
            header_problems.push(schema_problem(
                "/Envelope/Header/userId",
                "xrd:userId is required: <AgencyCode>:<account>, at most 64 characters.",
            ));
        }
        if header_problems.is_empty() {
            Ok(())
        } else {
            Err(schema_invalid(None, header_problems))
        }
    }

    fn is_this_service(&self, header: &Element) -> bool {
        let Some(service) = header.child(XRD, "service") else {
            return false;
        };
        let field = |name: &str| service.child_text(ID, name).map(str::trim);
        field("xRoadInstance") == Some(self.settings.xroad_instance.as_str())
            && field("memberClass") == Some(SERVICE[0])
            && field("memberCode") == Some(SERVICE[1])
            && field("subsystemCode") == Some(SERVICE[2])
            && field("serviceCode") == Some(SERVICE[3])
            && field("serviceVersion").is_none_or(|v| v == "v1")
    }

    fn check_agency(
        &self,
        bn: &Element,
        envelope: &Envelope<'_>,
        id: &str,
    ) -> Result<(), FaultReply> {
        let Some(agencies) = &self.settings.agencies else {
            return Ok(());
        };
        let agency = bn
            .child(BN, "SourceSystem")
            .and_then(|s| s.child_text(BN, "AgencyCode"))
            .unwrap_or_default();
        let user_agency = envelope
            .header
            .and_then(|h| h.child_text(XRD, "userId"))
            .and_then(|u| u.split_once(':'))
            .map(|(a, _)| a)
            .unwrap_or_default();
        if agencies.contains(agency) && agencies.contains(user_agency) {
            return Ok(());
        }
        Err(FaultReply {
            status: 500,
            code: "Client.AgencyNotAuthorised",
            text: "The AgencyCode is not registered for the calling subsystem.".into(),
            detail: Some(Box::new(RegistryFault {
                notification_id: Some(id.to_string()),
                ..RegistryFault::default()
            })),
            outcome: Outcome::Unauthorized,
        })
    }

    /// XSD problems (xmllint), or the mock's own minimal checks without it.
    fn schema_problems(&self, wrapper: &Element) -> Vec<Problem> {
        let Some(xsd) = &self.xsd else {
            return minimal_schema_problems(wrapper);
        };
        let (document, paths) = validation_document(wrapper);
        match run_xmllint(&xsd.path, &document) {
            Ok(errors) => errors
                .into_iter()
                .map(|(line, message)| {
                    let base = paths
                        .get(line.saturating_sub(1))
                        .cloned()
                        .unwrap_or_else(|| "/BirthNotification".into());
                    let path = match attribute_named(&message) {
                        Some(attr) => format!("{base}/@{attr}"),
                        None => base,
                    };
                    schema_problem(&path, message)
                })
                .take(100)
                .collect(),
            Err(why) => {
                tracing::error!(reason = %why, "the examplia mock could not run xmllint");
                vec![schema_problem(
                    "/BirthNotification",
                    "The registry could not validate the document.",
                )]
            }
        }
    }

    fn next_reference(&self, now: DateTime<Utc>) -> String {
        let n = self.references.fetch_add(1, Ordering::Relaxed) + 1;
        let year = now.with_timezone(&ext()).format("%Y");
        format!("EXA-BN-{year}-{:08}", n % 100_000_000)
    }

    fn receipt_reply(&self, envelope: &Envelope<'_>, req: &MockRequest, receipt: Receipt) -> Reply {
        let outcome = match receipt.status {
            "ACCEPTED" => Outcome::Accepted,
            "DUPLICATE" => Outcome::Duplicate,
            _ => Outcome::Rejected,
        };
        let first_error = receipt
            .problems
            .iter()
            .find(|p| p.severity == Severity::Error)
            .map(|p| p.code);
        let body = format!(
            "<bn:submitBirthNotificationResponse xmlns:bn=\"{BN}\"><bn:BirthNotificationReceipt>{}</bn:BirthNotificationReceipt></bn:submitBirthNotificationResponse>",
            receipt.xml()
        );
        let xml = soap_envelope(
            Some(&envelope.header_copy()),
            Some(&request_hash(&req.body)),
            &body,
        );
        let reply = Reply::new(200, "text/xml; charset=UTF-8", xml.into_bytes(), outcome)
            .reference(receipt.reference);
        match first_error {
            Some(code) => reply.detail(code),
            None => reply.detail(receipt.status),
        }
    }

    fn fault_reply(
        &self,
        envelope: Option<&Envelope<'_>>,
        req: &MockRequest,
        fault: FaultReply,
        now: DateTime<Utc>,
    ) -> Reply {
        // Registry faults copy the header when it could be read.
        let copy = fault.detail.as_ref().and(envelope).map(|e| e.header_copy());
        let hash = copy.as_ref().map(|_| request_hash(&req.body));
        let detail = fault
            .detail
            .as_ref()
            .map(|d| self.registry_fault_xml(d, now))
            .unwrap_or_default();
        let body = format!(
            "<{p}:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring>{}</{p}:Fault>",
            fault.code,
            escape_text(&fault.text),
            if detail.is_empty() {
                String::new()
            } else {
                format!("<detail>{detail}</detail>")
            },
            p = soap_prefix(copy.as_ref()),
        );
        let xml = soap_envelope(copy.as_ref(), hash.as_deref(), &body);
        let mut reply = Reply::new(
            fault.status,
            "text/xml; charset=UTF-8",
            xml.into_bytes(),
            fault.outcome,
        )
        .detail(fault.code);
        if let Some(reference) = fault.detail.and_then(|d| d.reference) {
            reply = reply.reference(reference);
        }
        reply
    }

    fn registry_fault_xml(&self, fault: &RegistryFault, now: DateTime<Utc>) -> String {
        let incident = self
            .ids
            .uuid("incident", self.ids.next_seq() ^ now.timestamp() as u64);
        let mut xml = format!(
            "<bn:RegistryFault xmlns:bn=\"{BN}\"><bn:IncidentId>{incident}</bn:IncidentId>"
        );
        let mut element = |name: &str, value: &str| {
            xml.push_str(&format!("<bn:{name}>{}</bn:{name}>", escape_text(value)));
        };
        if let Some(id) = &fault.notification_id {
            element("NotificationId", id);
        }
        if let Some(limit) = fault.limit {
            element("LimitExceeded", limit);
        }
        if let Some(secs) = fault.retry_after {
            element("RetryAfterSeconds", &secs.clamp(1, 86_400).to_string());
        }
        if let Some(reference) = &fault.reference {
            element("RegistryReference", reference);
        }
        for p in &fault.problems {
            xml.push_str(&problem_xml(p));
        }
        xml.push_str("</bn:RegistryFault>");
        xml
    }

    fn refusal_fault(&self, refusal: Refusal, notification_id: Option<String>) -> FaultReply {
        let detail = |limit: Option<&'static str>, retry_after: Option<u64>| {
            Some(Box::new(RegistryFault {
                notification_id: notification_id.clone(),
                limit,
                retry_after,
                ..RegistryFault::default()
            }))
        };
        let (status, code, text, detail) = match refusal {
            Refusal::Maintenance { retry_after } => (
                503,
                "Server.Unavailable",
                format!(
                    "Planned maintenance (Sunday 01:00-03:00 EXT). Retry after {retry_after} seconds."
                ),
                detail(None, Some(retry_after)),
            ),
            Refusal::Unavailable { retry_after } => (
                503,
                "Server.Unavailable",
                "The registry is unavailable.".to_string(),
                detail(None, retry_after),
            ),
            Refusal::Internal => (
                500,
                "Server.InternalError",
                "Unexpected error; the outcome is unknown. Resend the same document later."
                    .to_string(),
                detail(None, None),
            ),
            Refusal::Limited { limit, retry_after } => (
                500,
                "Server.RateLimited",
                format!(
                    "A limit of the calling subsystem was exceeded. Retry after {retry_after} seconds."
                ),
                detail(Some(limit.code()), Some(retry_after)),
            ),
            Refusal::TooLarge => (
                500,
                "Client.MessageTooLarge",
                "The request is over 256 KiB.".to_string(),
                detail(None, None),
            ),
        };
        FaultReply {
            status,
            code,
            text,
            detail,
            outcome: refusal.outcome(),
        }
    }
}

struct Receipt {
    notification_id: String,
    reference: String,
    received_at: DateTime<Utc>,
    status: &'static str,
    problems: Vec<Problem>,
}

impl Receipt {
    fn xml(&self) -> String {
        let received = self
            .received_at
            .with_timezone(&ext())
            .to_rfc3339_opts(SecondsFormat::Millis, false);
        let mut xml = format!(
            "<bn:NotificationId>{}</bn:NotificationId><bn:RegistryReference>{}</bn:RegistryReference>\
             <bn:ReceivedAt>{received}</bn:ReceivedAt><bn:Status>{}</bn:Status>",
            self.notification_id, self.reference, self.status
        );
        for p in self.problems.iter().take(100) {
            xml.push_str(&problem_xml(p));
        }
        xml
    }
}

/// The same content is the original receipt; different content is a fault.
fn duplicate(original: StoredRecord, digest: &str, id: String) -> Result<Receipt, FaultReply> {
    if original.digest == digest {
        return Ok(Receipt {
            notification_id: id,
            reference: original.reference,
            received_at: original.received_at,
            status: "DUPLICATE",
            problems: Vec::new(),
        });
    }
    Err(FaultReply {
        status: 500,
        code: "Client.Duplicate",
        text: "The NotificationId is already bound to an accepted notification with different content.".into(),
        detail: Some(Box::new(RegistryFault {
            notification_id: Some(id),
            reference: Some(original.reference),
            ..RegistryFault::default()
        })),
        outcome: Outcome::Conflict,
    })
}

fn problem_xml(p: &Problem) -> String {
    let message: String = p.message.chars().take(1000).collect();
    format!(
        "<bn:Problem><bn:Code>{}</bn:Code><bn:Severity>{}</bn:Severity><bn:Path>{}</bn:Path><bn:Message>{}</bn:Message></bn:Problem>",
        p.code,
        p.severity.as_str(),
        escape_text(&p.path),
        escape_text(&message)
    )
}

/// The parts of a request envelope the mock needs.
struct Envelope<'a> {
    text: &'a str,
    root: &'a Element,
    header: Option<&'a Element>,
    body: &'a Element,
}

/// The request header as the response copies it: its raw content and the
/// namespace declarations in scope for it.
struct HeaderCopy {
    declarations: Vec<(String, String)>,
    raw: String,
}

impl<'a> Envelope<'a> {
    fn read(root: &'a Element, text: &'a str) -> Result<Envelope<'a>, FaultReply> {
        if !root.is(SOAP, "Envelope") {
            return Err(security_fault(
                "Client.InvalidSoap",
                "The message is not a SOAP 1.1 envelope.",
            ));
        }
        let header = root.child(SOAP, "Header");
        let body = root.child(SOAP, "Body").ok_or_else(|| {
            security_fault("Client.InvalidSoap", "The SOAP envelope has no Body.")
        })?;
        Ok(Envelope {
            text,
            root,
            header,
            body,
        })
    }

    /// The only child of the Body must be `submitBirthNotification`.
    fn wrapper(&self) -> Result<&'a Element, FaultReply> {
        match self.body.children.as_slice() {
            [only] if only.is(BN, "submitBirthNotification") => Ok(only),
            _ => Err(schema_invalid(
                None,
                vec![schema_problem(
                    "/Envelope/Body",
                    "The Body must hold exactly one submitBirthNotification element.",
                )],
            )),
        }
    }

    fn header_copy(&self) -> HeaderCopy {
        let Some(header) = self.header else {
            return HeaderCopy {
                declarations: Vec::new(),
                raw: String::new(),
            };
        };
        let mut declarations = self.root.declarations.clone();
        for d in &header.declarations {
            declarations.retain(|(p, _)| p != &d.0);
            declarations.push(d.clone());
        }
        let (start, end) = header.content;
        HeaderCopy {
            declarations,
            raw: self.text.get(start..end).unwrap_or_default().to_string(),
        }
    }
}

/// A prefix for the SOAP namespace that the copied header does not bind otherwise.
fn soap_prefix(copy: Option<&HeaderCopy>) -> &'static str {
    const CANDIDATES: [&str; 4] = ["SOAP-ENV", "soapenv", "soap11", "mockenv"];
    let bound_elsewhere = |p: &str| {
        copy.is_some_and(|c| {
            c.declarations
                .iter()
                .any(|(prefix, uri)| prefix == p && uri != SOAP)
        })
    };
    CANDIDATES
        .into_iter()
        .find(|p| !bound_elsewhere(p))
        .unwrap_or("mockenv")
}

fn soap_envelope(copy: Option<&HeaderCopy>, request_hash: Option<&str>, body: &str) -> String {
    let p = soap_prefix(copy);
    let mut xml =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{p}:Envelope xmlns:{p}=\"{SOAP}\">");
    if let Some(copy) = copy {
        xml.push_str(&format!("<{p}:Header"));
        for (prefix, uri) in &copy.declarations {
            if prefix == p {
                continue;
            }
            let name = if prefix.is_empty() {
                "xmlns".to_string()
            } else {
                format!("xmlns:{prefix}")
            };
            xml.push_str(&format!(" {name}=\"{}\"", escape_attr(uri)));
        }
        xml.push('>');
        xml.push_str(&copy.raw);
        if let Some(hash) = request_hash {
            xml.push_str(&format!(
                "<xrd:requestHash xmlns:xrd=\"{XRD}\" algorithmId=\"http://www.w3.org/2001/04/xmlenc#sha512\">{hash}</xrd:requestHash>"
            ));
        }
        xml.push_str(&format!("</{p}:Header>"));
    }
    xml.push_str(&format!("<{p}:Body>{body}</{p}:Body></{p}:Envelope>\n"));
    xml
}

fn request_hash(body: &[u8]) -> String {
    base64(&Sha512::digest(body))
}

fn in_order(header: &Element) -> bool {
    let positions: Vec<usize> = header
        .children
        .iter()
        .filter(|c| c.ns.as_deref() == Some(XRD))
        .filter_map(|c| HEADER_ORDER.iter().position(|n| *n == c.local))
        .collect();
    positions.windows(2).all(|w| w[0] < w[1])
}

fn valid_user_id(user_id: &str) -> bool {
    let Some((agency, account)) = user_id.split_once(':') else {
        return false;
    };
    user_id.chars().count() <= 64
        && agency.len() >= 2
        && agency.starts_with(|c: char| c.is_ascii_uppercase())
        && agency
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        && !account.trim().is_empty()
}

fn is_lower_uuid(s: &str) -> bool {
    s.len() == 36
        && uuid::Uuid::try_parse(s).is_ok_and(|u| (1..=8).contains(&u.get_version_num()))
        && s.bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'))
        && matches!(s.as_bytes()[19], b'8' | b'9' | b'a' | b'b')
}

/// Without xmllint: the wrapper holds one BirthNotification with a NotificationId.
fn minimal_schema_problems(wrapper: &Element) -> Vec<Problem> {
    let notifications: Vec<_> = wrapper.children_named(BN, "BirthNotification").collect();
    if notifications.len() != 1 || wrapper.children.len() != 1 {
        return vec![schema_problem(
            "/submitBirthNotification",
            "Exactly one BirthNotification is required.",
        )];
    }
    match notifications[0].child_text(BN, "NotificationId") {
        Some(id) if is_lower_uuid(id) => Vec::new(),
        _ => vec![schema_problem(
            "/BirthNotification/NotificationId",
            "A lower-case UUID is required.",
        )],
    }
}

/// The wrapper re-serialised with one element per line, and the Problem
/// path of each line.
fn validation_document(wrapper: &Element) -> (String, Vec<String>) {
    let mut namespaces: Vec<String> = Vec::new();
    collect_namespaces(wrapper, &mut namespaces);
    let mut out = String::new();
    let mut paths = Vec::new();
    write_element(wrapper, "", &namespaces, true, &mut out, &mut paths);
    (out, paths)
}

fn collect_namespaces(el: &Element, out: &mut Vec<String>) {
    for ns in el
        .ns
        .iter()
        .chain(el.attrs.iter().filter_map(|a| a.ns.as_ref()))
    {
        if !out.contains(ns) {
            out.push(ns.clone());
        }
    }
    for c in &el.children {
        collect_namespaces(c, out);
    }
}

fn qualified(ns: Option<&String>, local: &str, namespaces: &[String]) -> String {
    match ns.and_then(|n| namespaces.iter().position(|x| x == n)) {
        Some(i) => format!("n{i}:{local}"),
        None => local.to_string(),
    }
}

fn write_element(
    el: &Element,
    path: &str,
    namespaces: &[String],
    root: bool,
    out: &mut String,
    paths: &mut Vec<String>,
) {
    // Problem paths start at BirthNotification, not at the wrapper.
    let own_path = if root {
        "/submitBirthNotification".to_string()
    } else {
        path.to_string()
    };
    if !root {
        out.push('\n');
    }
    paths.push(own_path.clone());
    let name = qualified(el.ns.as_ref(), &el.local, namespaces);
    out.push_str(&format!("<{name}"));
    if root {
        for (i, ns) in namespaces.iter().enumerate() {
            out.push_str(&format!(" xmlns:n{i}=\"{}\"", escape_attr(ns)));
        }
    }
    for a in &el.attrs {
        let attr = qualified(a.ns.as_ref(), &a.local, namespaces);
        out.push_str(&format!(" {attr}=\"{}\"", escape_attr(&a.value)));
    }
    out.push('>');
    if el.children.is_empty() || !el.text.trim().is_empty() {
        out.push_str(&escape_text(&el.text).replace('\n', "&#10;"));
    }
    for (child_name, index, child) in indexed(el) {
        let child_path = if root {
            step("", child_name, index)
        } else {
            step(&own_path, child_name, index)
        };
        write_element(child, &child_path, namespaces, false, out, paths);
    }
    out.push_str(&format!("</{name}>"));
}

fn xmllint_available() -> bool {
    Command::new("xmllint")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn xsd_file(path: Option<&Path>) -> std::io::Result<XsdFile> {
    if let Some(path) = path {
        std::fs::metadata(path)?;
        return Ok(XsdFile {
            path: path.to_path_buf(),
            temporary: false,
        });
    }
    let path = std::env::temp_dir().join(format!(
        "registry-gateway-mock-{}-{}.xsd",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::write(&path, EXAMPLIA_XSD)?;
    Ok(XsdFile {
        path,
        temporary: true,
    })
}

/// xmllint's validity errors as (line, sanitised message); empty when valid.
fn run_xmllint(xsd: &Path, document: &str) -> Result<Vec<(usize, String)>, String> {
    let mut child = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(xsd)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start xmllint: {e}"))?;
    // xmllint reads the whole document before it writes errors.
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(document.as_bytes())
        .map_err(|e| format!("cannot write to xmllint: {e}"))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("xmllint failed: {e}"))?;
    match output.status.code() {
        Some(0) => Ok(Vec::new()),
        Some(3) | Some(4) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let errors: Vec<_> = stderr.lines().filter_map(parse_xmllint_line).collect();
            if errors.is_empty() {
                Err("xmllint refused the document without a validity error".into())
            } else {
                Ok(errors)
            }
        }
        other => Err(format!("xmllint exited with {other:?}")),
    }
}

/// `-:12: element NotifiedAt: Schemas validity error : Element '…': …`
fn parse_xmllint_line(line: &str) -> Option<(usize, String)> {
    let rest = line.strip_prefix("-:")?;
    let (number, rest) = rest.split_once(':')?;
    let line_no: usize = number.trim().parse().ok()?;
    let (_, message) = rest.split_once("Schemas validity error : ")?;
    Some((line_no, sanitise(message)))
}

/// xmllint quotes values; a Problem message must not carry them. Quoted
/// element, attribute, type and facet names stay; other quotes become '…'.
fn sanitise(message: &str) -> String {
    let message = message.replace(&format!("{{{BN}}}"), "");
    let message = match message.find(" is not an element of the set {") {
        Some(i) => format!("{} is not an element of the allowed set.", &message[..i]),
        None => message,
    };
    let mut out = String::new();
    let mut rest = message.as_str();
    while let Some(open) = rest.find('\'') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        let Some(close) = after[1..].find('\'') else {
            out.push_str(after);
            rest = "";
            break;
        };
        let quoted = &after[1..1 + close];
        let keep = ["Element ", "attribute ", "facet ", "type "]
            .iter()
            .any(|k| before.ends_with(k));
        out.push('\'');
        out.push_str(if keep { quoted } else { "…" });
        out.push('\'');
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out.chars().take(1000).collect()
}

/// `attribute 'issuer'` in an xmllint message.
fn attribute_named(message: &str) -> Option<String> {
    let start = message.find("attribute '")? + "attribute '".len();
    let name: String = message[start..]
        .chars()
        .take_while(|c| *c != '\'')
        .collect();
    name.chars()
        .all(|c| c.is_ascii_alphanumeric())
        .then_some(name)
}

impl Registry for Examplia {
    fn endpoint(&self, method: &Method, path: &str) -> Endpoint {
        match (method, path) {
            (&Method::POST, SERVICE_PATH) => Endpoint::Submit,
            _ => Endpoint::Unknown,
        }
    }

    fn token_path(&self) -> Option<&'static str> {
        None
    }

    fn idempotency_key(&self, req: &MockRequest) -> Option<String> {
        notification_id(&req.body)
    }

    fn max_body(&self) -> usize {
        MAX_BYTES
    }

    fn handle(&self, endpoint: Endpoint, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        match endpoint {
            Endpoint::Submit => self.submit(req, now),
            _ => self
                .fault_reply(
                    None,
                    req,
                    security_fault(
                        "Server.ClientProxy.UnknownService",
                        "Nothing is served here.",
                    ),
                    now,
                )
                .with_status(404, Outcome::NotFound),
        }
    }

    fn refuse(&self, refusal: Refusal, req: &MockRequest, now: DateTime<Utc>) -> Reply {
        let parsed = xml::parse(&req.body).ok();
        let text = std::str::from_utf8(xml::strip_bom(&req.body)).unwrap_or_default();
        let envelope = parsed.as_ref().and_then(|r| Envelope::read(r, text).ok());
        let fault = self.refusal_fault(refusal, notification_id(&req.body));
        let mut reply = self.fault_reply(envelope.as_ref(), req, fault, now);
        // The endpoint sends Retry-After in maintenance (Security Servers drop it).
        if refusal.outcome() == Outcome::Fault && reply.status == 503 {
            reply = reply.retry_after(refusal.retry_after());
        }
        reply
    }

    fn records(&self) -> &Records {
        &self.records
    }

    fn describe(&self) -> String {
        let xsd = if self.xsd.is_some() {
            "XSD checked by xmllint"
        } else {
            "no XSD check (xmllint not used)"
        };
        format!(
            "X-Road SOAP 1.1, service {}/GOV/70000001/crvs/submitBirthNotification/v1, {xsd}",
            self.settings.xroad_instance
        )
    }
}

impl Reply {
    fn with_status(mut self, status: u16, outcome: Outcome) -> Reply {
        self.status = status;
        self.outcome = outcome;
        self
    }
}

/// The NotificationId of a request, when it can be read and is well-formed.
fn notification_id(body: &[u8]) -> Option<String> {
    let root = xml::parse(body).ok()?;
    let envelope = Envelope::read(&root, "").ok()?;
    let id = envelope
        .body
        .child(BN, "submitBirthNotification")?
        .child(BN, "BirthNotification")?
        .child_text(BN, "NotificationId")?;
    is_lower_uuid(id).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitise_drops_values_but_keeps_names() {
        let m = sanitise(&format!(
            "Element '{{{BN}}}NotifiedAt': [facet 'pattern'] The value '2026-10-02T09:15:00' is not accepted by the pattern '[0-9]{{4}}'."
        ));
        assert_eq!(
            m,
            "Element 'NotifiedAt': [facet 'pattern'] The value '…' is not accepted by the pattern '…'."
        );
        let m = sanitise(&format!(
            "Element '{{{BN}}}Identifier', attribute 'issuer': [facet 'enumeration'] The value 'XX' is not an element of the set {{'EXA', 'ABW'}}."
        ));
        assert_eq!(
            m,
            "Element 'Identifier', attribute 'issuer': [facet 'enumeration'] The value '…' is not an element of the allowed set."
        );
        assert_eq!(attribute_named(&m).as_deref(), Some("issuer"));
    }

    #[test]
    fn xmllint_lines_parse() {
        let line = format!(
            "-:7: element Sex: Schemas validity error : Element '{{{BN}}}Sex': [facet 'enumeration'] The value '3' is not an element of the set {{'0', '1'}}."
        );
        assert_eq!(
            parse_xmllint_line(&line),
            Some((7, "Element 'Sex': [facet 'enumeration'] The value '…' is not an element of the allowed set.".into()))
        );
        assert_eq!(parse_xmllint_line("- fails to validate"), None);
    }

    #[test]
    fn the_validation_document_puts_one_element_per_line() {
        let doc = format!(
            r#"<s xmlns="{BN}"><BirthNotification><Mother><Identifiers><Identifier scheme="A">1</Identifier><Identifier scheme="B">2</Identifier></Identifiers></Mother></BirthNotification></s>"#
        );
        let root = xml::parse(doc.as_bytes()).unwrap();
        let (text, paths) = validation_document(&root);
        assert_eq!(text.lines().count(), paths.len());
        assert_eq!(
            paths,
            vec![
                "/submitBirthNotification",
                "/BirthNotification",
                "/BirthNotification/Mother",
                "/BirthNotification/Mother/Identifiers",
                "/BirthNotification/Mother/Identifiers/Identifier[1]",
                "/BirthNotification/Mother/Identifiers/Identifier[2]",
            ]
        );
        assert!(text.lines().nth(5).unwrap().contains(r#"scheme="B">2<"#));
    }

    #[test]
    fn lower_case_uuids_only() {
        assert!(is_lower_uuid("feee0a7b-26dc-419a-b4d6-8d8ae89c2f06"));
        assert!(!is_lower_uuid("FEEE0A7B-26DC-419A-B4D6-8D8AE89C2F06"));
        assert!(!is_lower_uuid("feee0a7b-26dc-019a-b4d6-8d8ae89c2f06"));
        assert!(!is_lower_uuid("feee0a7b26dc419ab4d68d8ae89c2f06"));
    }

    #[test]
    fn user_ids_name_an_agency_and_an_account() {
        assert!(valid_user_id("UNHCR:registry-gateway"));
        assert!(!valid_user_id("registry-gateway"));
        assert!(!valid_user_id("unhcr:x"));
        assert!(!valid_user_id(&format!("UNHCR:{}", "x".repeat(60))));
    }
}
