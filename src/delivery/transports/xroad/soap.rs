//! Reading the Examplia service's SOAP 1.1 answers: a
//! `BirthNotificationReceipt` or a `Fault` with its `RegistryFault` detail.
//! Namespaces decide, prefixes do not; unknown elements are ignored (the
//! service only adds optional content, README §8). No DTDs: a DOCTYPE, an
//! undeclared entity or deep nesting makes the answer unreadable.

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const BN: &str = "urn:examplia:crvs:birth-notification:1";
/// The service's answers nest about 6 levels.
const MAX_DEPTH: usize = 32;

/// An element: namespace, local name, its own text, its children.
#[derive(Debug, Default)]
struct Node {
    ns: Option<String>,
    local: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn is(&self, ns: &str, local: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.local == local
    }

    fn child(&self, ns: &str, local: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    /// SOAP 1.1 fault children are unqualified; some servers qualify them.
    fn child_local(&self, local: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.local == local)
    }

    fn text_of(&self, ns: &str, local: &str) -> Option<String> {
        self.child(ns, local).map(|c| c.text.trim().to_string())
    }
}

/// One `Problem` of a receipt or fault: code, severity, path (its message,
/// prose that may quote values, is not read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub code: String,
    pub severity: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReceiptXml {
    pub notification_id: Option<String>,
    pub reference: Option<String>,
    pub received_at: Option<String>,
    pub status: String,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FaultXml {
    /// Without any prefix (`SOAP-ENV:Server.RateLimited` -> `Server.RateLimited`).
    pub code: String,
    pub limit: Option<String>,
    pub retry_after_seconds: Option<u64>,
    pub reference: Option<String>,
    pub incident: Option<String>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    Receipt(ReceiptXml),
    Fault(FaultXml),
}

/// The receipt or fault in a SOAP answer; None when the body is neither.
pub(super) fn read(bytes: &[u8]) -> Option<Answer> {
    let root = parse(bytes)?;
    if !root.is(SOAP, "Envelope") {
        return None;
    }
    let first = root.child(SOAP, "Body")?.children.first()?;
    if first.is(SOAP, "Fault") {
        return Some(Answer::Fault(fault(first)?));
    }
    let receipt = first
        .is(BN, "submitBirthNotificationResponse")
        .then(|| first.child(BN, "BirthNotificationReceipt"))
        .flatten()?;
    Some(Answer::Receipt(ReceiptXml {
        notification_id: receipt.text_of(BN, "NotificationId"),
        reference: receipt.text_of(BN, "RegistryReference"),
        received_at: receipt.text_of(BN, "ReceivedAt"),
        status: receipt.text_of(BN, "Status")?,
        problems: problems(receipt),
    }))
}

fn fault(node: &Node) -> Option<FaultXml> {
    let code = node.child_local("faultcode")?.text.trim();
    let code = code.rsplit_once(':').map_or(code, |(_, c)| c).to_string();
    let detail = node
        .child_local("detail")
        .and_then(|d| d.child(BN, "RegistryFault"));
    let text = |local: &str| detail.and_then(|d| d.text_of(BN, local));
    Some(FaultXml {
        code,
        limit: text("LimitExceeded"),
        retry_after_seconds: text("RetryAfterSeconds").and_then(|s| s.parse().ok()),
        reference: text("RegistryReference"),
        incident: text("IncidentId"),
        problems: detail.map(problems).unwrap_or_default(),
    })
}

fn problems(parent: &Node) -> Vec<Problem> {
    parent
        .children
        .iter()
        .filter(|c| c.is(BN, "Problem"))
        .map(|p| Problem {
            code: p.text_of(BN, "Code").unwrap_or_default(),
            severity: p.text_of(BN, "Severity").unwrap_or_default(),
            path: p.text_of(BN, "Path").unwrap_or_default(),
        })
        .collect()
}

/// The document as a tree; None if it is not well-formed UTF-8 XML, has a
/// DOCTYPE, an entity other than the five predefined ones, or nests too deep.
fn parse(bytes: &[u8]) -> Option<Node> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = NsReader::from_str(std::str::from_utf8(bytes).ok()?);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    loop {
        let (resolved, event) = reader.read_resolved_event().ok()?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::DocType(_) => return None,
            Event::Start(start) | Event::Empty(start) if root.is_none() => {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                let node = Node {
                    ns: namespace(&resolved)?,
                    local: std::str::from_utf8(start.local_name().into_inner())
                        .ok()?
                        .to_string(),
                    ..Node::default()
                };
                stack.push(node);
                if empty {
                    close(&mut stack, &mut root);
                }
            }
            Event::End(_) => close(&mut stack, &mut root),
            Event::Text(t) => push_text(&mut stack, &t.decode().ok()?),
            Event::CData(c) => push_text(&mut stack, &c.decode().ok()?),
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().ok()? {
                    Some(c) => c.to_string(),
                    None => predefined(&r.decode().ok()?)?.to_string(),
                };
                push_text(&mut stack, &text);
            }
            Event::Eof => break,
            Event::Start(_) | Event::Empty(_) => return None,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
    stack.is_empty().then_some(root).flatten()
}

fn namespace(resolved: &ResolveResult<'_>) -> Option<Option<String>> {
    match resolved {
        ResolveResult::Bound(ns) => Some(Some(std::str::from_utf8(ns.0).ok()?.to_string())),
        ResolveResult::Unbound => Some(None),
        ResolveResult::Unknown(_) => None,
    }
}

fn predefined(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "apos" => "'",
        "quot" => "\"",
        _ => return None,
    })
}

fn push_text(stack: &mut [Node], text: &str) {
    if let Some(node) = stack.last_mut() {
        node.text.push_str(text);
    }
}

fn close(stack: &mut Vec<Node>, root: &mut Option<Node>) {
    if let Some(node) = stack.pop() {
        match stack.last_mut() {
            Some(parent) => parent.children.push(node),
            None => *root = Some(node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"<SOAP-ENV:Header><xrd:client id:objectType="SUBSYSTEM"><id:xRoadInstance>EXA</id:xRoadInstance></xrd:client><xrd:protocolVersion>4.0</xrd:protocolVersion></SOAP-ENV:Header>"#;

    fn envelope(body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers"
    xmlns:bn="urn:examplia:crvs:birth-notification:1">{HEADER}<SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"#
        )
    }

    #[test]
    fn an_accepted_receipt_as_published_in_example_06() {
        let xml = envelope(
            r#"<bn:submitBirthNotificationResponse>
      <bn:BirthNotificationReceipt>
        <bn:NotificationId>feee0a7b-26dc-419a-b4d6-8d8ae89c2f06</bn:NotificationId>
        <bn:RegistryReference>EXA-BN-2026-00184532</bn:RegistryReference>
        <bn:ReceivedAt>2026-10-19T09:05:14.207+02:00</bn:ReceivedAt>
        <bn:Status>ACCEPTED</bn:Status>
        <bn:SomethingAddedIn110>ignored</bn:SomethingAddedIn110>
      </bn:BirthNotificationReceipt>
    </bn:submitBirthNotificationResponse>"#,
        );
        assert_eq!(
            read(xml.as_bytes()),
            Some(Answer::Receipt(ReceiptXml {
                notification_id: Some("feee0a7b-26dc-419a-b4d6-8d8ae89c2f06".into()),
                reference: Some("EXA-BN-2026-00184532".into()),
                received_at: Some("2026-10-19T09:05:14.207+02:00".into()),
                status: "ACCEPTED".into(),
                problems: vec![],
            }))
        );
    }

    #[test]
    fn a_rate_limited_fault_as_published_in_example_07() {
        let xml = envelope(
            r#"<SOAP-ENV:Fault>
      <faultcode>Server.RateLimited</faultcode>
      <faultstring>Request rate limit exceeded. Retry after 2 seconds.</faultstring>
      <detail>
        <bn:RegistryFault>
          <bn:IncidentId>efb670f4-f2a0-40cb-bd53-9a348800ae85</bn:IncidentId>
          <bn:NotificationId>feee0a7b-26dc-419a-b4d6-8d8ae89c2f06</bn:NotificationId>
          <bn:LimitExceeded>RATE</bn:LimitExceeded>
          <bn:RetryAfterSeconds>2</bn:RetryAfterSeconds>
        </bn:RegistryFault>
      </detail>
    </SOAP-ENV:Fault>"#,
        );
        let Some(Answer::Fault(f)) = read(xml.as_bytes()) else {
            panic!("not a fault");
        };
        assert_eq!(f.code, "Server.RateLimited");
        assert_eq!(f.limit.as_deref(), Some("RATE"));
        assert_eq!(f.retry_after_seconds, Some(2));
        assert_eq!(
            f.incident.as_deref(),
            Some("efb670f4-f2a0-40cb-bd53-9a348800ae85")
        );
    }

    #[test]
    fn prefixes_do_not_matter_and_faultcodes_lose_theirs() {
        let xml = r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>
            <e:Fault><faultcode>e:Client.SchemaInvalid</faultcode><faultstring>x &amp; y</faultstring>
            <detail><RegistryFault xmlns="urn:examplia:crvs:birth-notification:1">
              <Problem><Code>SCHEMA_VIOLATION</Code><Severity>ERROR</Severity>
                <Path>/BirthNotification/Child/DateOfBirth</Path><Message>'2026-13-01' is not a date</Message></Problem>
            </RegistryFault></detail></e:Fault></e:Body></e:Envelope>"#;
        let Some(Answer::Fault(f)) = read(xml.as_bytes()) else {
            panic!("not a fault");
        };
        assert_eq!(f.code, "Client.SchemaInvalid");
        assert_eq!(
            f.problems,
            vec![Problem {
                code: "SCHEMA_VIOLATION".into(),
                severity: "ERROR".into(),
                path: "/BirthNotification/Child/DateOfBirth".into()
            }]
        );
    }

    #[test]
    fn doctypes_entities_and_other_documents_are_unreadable() {
        let doctype = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>"#;
        assert_eq!(read(doctype.as_bytes()), None);
        let entity = envelope(
            "<bn:submitBirthNotificationResponse>&e;</bn:submitBirthNotificationResponse>",
        );
        assert_eq!(read(entity.as_bytes()), None);
        assert_eq!(read(b"<html><body>502 Bad Gateway</body></html>"), None);
        assert_eq!(read(b"not xml at all"), None);
        assert_eq!(read(envelope("").as_bytes()), None);
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(read(deep.as_bytes()), None);
        let wrong_ns = envelope(
            r#"<x:submitBirthNotificationResponse xmlns:x="urn:other"><x:BirthNotificationReceipt><x:Status>ACCEPTED</x:Status></x:BirthNotificationReceipt></x:submitBirthNotificationResponse>"#,
        );
        assert_eq!(read(wrong_ns.as_bytes()), None);
    }

    proptest::proptest! {
        #[test]
        fn any_answer_is_read_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = read(&bytes);
        }

        #[test]
        fn any_cut_of_a_fault_is_read_without_panic(cut in 0usize..600) {
            let xml = envelope("<SOAP-ENV:Fault><faultcode>Server.RateLimited</faultcode><detail><bn:RegistryFault><bn:RetryAfterSeconds>2</bn:RetryAfterSeconds></bn:RegistryFault></detail></SOAP-ENV:Fault>");
            let _ = read(&xml.as_bytes()[..cut.min(xml.len())]);
        }
    }
}
