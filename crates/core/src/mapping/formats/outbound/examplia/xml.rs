//! Writing the SOAP 1.1 envelope with quick-xml. Text and attribute values are
//! escaped here, not by quick-xml, because XML attribute-value normalisation
//! turns a literal tab or line break into a space: they must go out as
//! character references to arrive unchanged.

use std::borrow::Cow;

use quick_xml::Writer;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::document::{Body, Node};
use crate::mapping::formats::EncodeError;

const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const XRD: &str = "http://x-road.eu/xsd/xroad.xsd";
const ID: &str = "http://x-road.eu/xsd/identifiers";
pub const BN: &str = "urn:examplia:crvs:birth-notification:1";

/// The service this format calls, fixed by the spec (README §2); only its
/// X-Road instance differs between production and test.
const SERVICE: [(&str, &str); 5] = [
    ("memberClass", "GOV"),
    ("memberCode", "70000001"),
    ("subsystemCode", "crvs"),
    ("serviceCode", "submitBirthNotification"),
    ("serviceVersion", "v1"),
];

/// Escape for element text (`in_attribute` false) or an attribute value.
/// A carriage return is escaped everywhere, since parsers turn a literal one
/// into a line feed.
pub fn escape(s: &str, in_attribute: bool) -> Cow<'_, str> {
    let needs = |c: char| {
        matches!(c, '&' | '<' | '>' | '"' | '\'' | '\r')
            || (in_attribute && matches!(c, '\n' | '\t'))
    };
    if !s.contains(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' if in_attribute => out.push_str("&#10;"),
            '\t' if in_attribute => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

struct Xml {
    writer: Writer<Vec<u8>>,
}

fn write_failed() -> EncodeError {
    EncodeError::Invalid {
        path: String::new(),
        reason: "the XML writer failed".into(),
    }
}

impl Xml {
    fn event(&mut self, event: Event<'_>) -> Result<(), EncodeError> {
        self.writer.write_event(event).map_err(|_| write_failed())
    }

    fn start(&mut self, name: &str, attributes: &[(&str, &str)]) -> Result<(), EncodeError> {
        let mut start = BytesStart::new(name);
        for (key, value) in attributes {
            let value = escape(value, true);
            start.push_attribute(Attribute::from((key.as_bytes(), value.as_bytes())));
        }
        self.event(Event::Start(start))
    }

    fn end(&mut self, name: &str) -> Result<(), EncodeError> {
        self.event(Event::End(BytesEnd::new(name)))
    }

    fn text_element(
        &mut self,
        name: &str,
        attributes: &[(&str, &str)],
        text: &str,
    ) -> Result<(), EncodeError> {
        self.start(name, attributes)?;
        self.event(Event::Text(BytesText::from_escaped(escape(text, false))))?;
        self.end(name)
    }

    /// A tree of nodes, every element in namespace prefix `bn`.
    fn nodes(&mut self, nodes: &[Node<'_>]) -> Result<(), EncodeError> {
        for node in nodes {
            let name = format!("bn:{}", node.name);
            let attributes: Vec<(&str, &str)> = node
                .attributes
                .iter()
                .map(|(k, v)| (*k, v.as_ref()))
                .collect();
            match &node.body {
                Body::Text(text) => self.text_element(&name, &attributes, text)?,
                Body::Children(children) => {
                    self.start(&name, &attributes)?;
                    self.nodes(children)?;
                    self.end(&name)?;
                }
            }
        }
        Ok(())
    }

    /// `xrd:client` or `xrd:service`: an X-Road identifier, its parts in `id`.
    fn identifier(
        &mut self,
        name: &str,
        object_type: &str,
        parts: &[Node<'_>],
        fixed: &[(&str, &str)],
    ) -> Result<(), EncodeError> {
        self.start(name, &[("id:objectType", object_type)])?;
        for part in parts {
            let Body::Text(text) = &part.body else {
                return Err(write_failed());
            };
            self.text_element(&format!("id:{}", part.name), &[], text)?;
        }
        for (part, text) in fixed {
            self.text_element(&format!("id:{part}"), &[], text)?;
        }
        self.end(name)
    }

    /// The X-Road header in the spec's order: client, service, id, userId,
    /// issue, protocolVersion. Never requestHash (the provider adds it).
    fn header(&mut self, parts: &[Node<'_>], request_id: &str) -> Result<(), EncodeError> {
        self.start("SOAP-ENV:Header", &[])?;
        for part in parts {
            match (part.name, &part.body) {
                ("client", Body::Children(ids)) => {
                    self.identifier("xrd:client", "SUBSYSTEM", ids, &[])?;
                }
                ("service", Body::Children(ids)) => {
                    self.identifier("xrd:service", "SERVICE", ids, &SERVICE)?;
                    self.text_element("xrd:id", &[], request_id)?;
                }
                (name, Body::Text(text)) => {
                    self.text_element(&format!("xrd:{name}"), &[], text)?;
                }
                _ => return Err(write_failed()),
            }
        }
        self.text_element("xrd:protocolVersion", &[], "4.0")?;
        self.end("SOAP-ENV:Header")
    }
}

/// The whole request: declaration, envelope, header, and the body's
/// `submitBirthNotification` wrapper around the notification.
pub fn envelope(
    header: &[Node<'_>],
    notification: &[Node<'_>],
    request_id: &str,
) -> Result<Vec<u8>, EncodeError> {
    let mut xml = Xml {
        writer: Writer::new_with_indent(Vec::new(), b' ', 2),
    };
    xml.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    xml.start(
        "SOAP-ENV:Envelope",
        &[
            ("xmlns:SOAP-ENV", SOAP_ENV),
            ("xmlns:xrd", XRD),
            ("xmlns:id", ID),
            ("xmlns:bn", BN),
        ],
    )?;
    xml.header(header, request_id)?;
    xml.start("SOAP-ENV:Body", &[])?;
    xml.start("bn:submitBirthNotification", &[])?;
    xml.start("bn:BirthNotification", &[])?;
    xml.nodes(notification)?;
    xml.end("bn:BirthNotification")?;
    xml.end("bn:submitBirthNotification")?;
    xml.end("SOAP-ENV:Body")?;
    xml.end("SOAP-ENV:Envelope")?;
    let mut bytes = xml.writer.into_inner();
    bytes.push(b'\n');
    Ok(bytes)
}
