//! Writing the SOAP 1.1 envelope with quick-xml. Text and attribute values are
//! escaped here, not by quick-xml, because XML attribute-value normalisation
//! turns a literal tab or line break into a space: they must go out as
//! character references to arrive unchanged.

use std::borrow::Cow;

use quick_xml::Writer;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use serde_json::Value;

use super::document::{self, Path, Sink};
use super::schema;
use crate::mapping::formats::EncodeError;

const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const XRD: &str = "http://x-road.eu/xsd/xroad.xsd";
const ID: &str = "http://x-road.eu/xsd/identifiers";
pub const BN: &str = "urn:examplia:crvs:birth-notification:1";

/// The service this format calls, fixed by the spec (README §2); only its
/// X-Road instance differs between production and test.
pub const SERVICE: [(&str, &str); 5] = [
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

/// Attribute pairs for an element that has none.
pub const NONE: &[(&str, &str)] = &[];

/// The writer, and a buffer in which element names are put together (prefix,
/// then local name) rather than formatted anew for each element.
pub struct Xml {
    writer: Writer<Vec<u8>>,
    name: String,
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

    fn name(&mut self, prefix: &str, local: &str) {
        self.name.clear();
        self.name.push_str(prefix);
        self.name.push_str(local);
    }

    pub fn start<V: AsRef<str>>(
        &mut self,
        prefix: &str,
        local: &str,
        attributes: &[(&str, V)],
    ) -> Result<(), EncodeError> {
        self.name(prefix, local);
        let mut start = BytesStart::new(self.name.as_str());
        for (key, value) in attributes {
            let value = escape(value.as_ref(), true);
            start.push_attribute(Attribute::from((key.as_bytes(), value.as_bytes())));
        }
        self.writer
            .write_event(Event::Start(start))
            .map_err(|_| write_failed())
    }

    pub fn end(&mut self, prefix: &str, local: &str) -> Result<(), EncodeError> {
        self.name(prefix, local);
        self.writer
            .write_event(Event::End(BytesEnd::new(self.name.as_str())))
            .map_err(|_| write_failed())
    }

    pub fn text_element<V: AsRef<str>>(
        &mut self,
        prefix: &str,
        local: &str,
        attributes: &[(&str, V)],
        text: &str,
    ) -> Result<(), EncodeError> {
        self.start(prefix, local, attributes)?;
        self.event(Event::Text(BytesText::from_escaped(escape(text, false))))?;
        self.end(prefix, local)
    }
}

/// The notification: every element in namespace prefix `bn`.
struct Notification<'x>(&'x mut Xml);

impl Sink for Notification<'_> {
    fn start(&mut self, name: &'static str) -> Result<(), EncodeError> {
        self.0.start("bn:", name, NONE)
    }

    fn end(&mut self, name: &'static str) -> Result<(), EncodeError> {
        self.0.end("bn:", name)
    }

    fn text(
        &mut self,
        name: &'static str,
        attributes: &[(&'static str, Cow<'_, str>)],
        text: &str,
    ) -> Result<(), EncodeError> {
        self.0.text_element("bn:", name, attributes, text)
    }
}

/// The X-Road header in the spec's order: client, service, id, userId,
/// issue (the mapped parts in table order, `xrd:client` and `xrd:service`
/// X-Road identifiers with their parts in `id`), then protocolVersion. Never
/// requestHash (the provider adds it).
struct Header<'x> {
    xml: &'x mut Xml,
    request_id: &'x str,
    /// Inside `client` or `service`.
    in_identifier: bool,
}

impl Sink for Header<'_> {
    fn start(&mut self, name: &'static str) -> Result<(), EncodeError> {
        let object_type = match (self.in_identifier, name) {
            (false, "client") => "SUBSYSTEM",
            (false, "service") => "SERVICE",
            _ => return Err(write_failed()),
        };
        self.in_identifier = true;
        self.xml
            .start("xrd:", name, &[("id:objectType", object_type)])
    }

    fn end(&mut self, name: &'static str) -> Result<(), EncodeError> {
        self.in_identifier = false;
        if name == "service" {
            for (part, text) in SERVICE {
                self.xml.text_element("id:", part, NONE, text)?;
            }
        }
        self.xml.end("xrd:", name)?;
        if name == "service" {
            self.xml.text_element("xrd:", "id", NONE, self.request_id)?;
        }
        Ok(())
    }

    /// The header's parts have no attributes.
    fn text(
        &mut self,
        name: &'static str,
        _attributes: &[(&'static str, Cow<'_, str>)],
        text: &str,
    ) -> Result<(), EncodeError> {
        let prefix = if self.in_identifier { "id:" } else { "xrd:" };
        self.xml.text_element(prefix, name, NONE, text)
    }
}

/// The whole request: declaration, envelope, header, and the body's
/// `submitBirthNotification` wrapper around the notification.
pub struct Request(Xml);

impl Request {
    /// The declaration and the envelope's start tag.
    pub fn start() -> Result<Request, EncodeError> {
        // A request is a few kilobytes: one allocation rather than a doubling series.
        let mut xml = Xml {
            writer: Writer::new_with_indent(Vec::with_capacity(8 << 10), b' ', 2),
            name: String::with_capacity(64),
        };
        xml.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        xml.start(
            "SOAP-ENV:",
            "Envelope",
            &[
                ("xmlns:SOAP-ENV", SOAP_ENV),
                ("xmlns:xrd", XRD),
                ("xmlns:id", ID),
                ("xmlns:bn", BN),
            ],
        )?;
        Ok(Request(xml))
    }

    /// The mapped `Header`, checked against [`schema::HEADER`] as it is written.
    pub fn header(&mut self, header: &Value, request_id: &str) -> Result<(), EncodeError> {
        let xml = &mut self.0;
        xml.start("SOAP-ENV:", "Header", NONE)?;
        let mut sink = Header {
            xml,
            request_id,
            in_identifier: false,
        };
        document::children(header, schema::HEADER, &Path::root("Header"), &mut sink)?;
        xml.text_element("xrd:", "protocolVersion", NONE, "4.0")?;
        xml.end("SOAP-ENV:", "Header")
    }

    /// The mapped `BirthNotification`, checked against
    /// [`schema::BIRTH_NOTIFICATION`] as it is written.
    pub fn body(&mut self, notification: &Value) -> Result<(), EncodeError> {
        let xml = &mut self.0;
        xml.start("SOAP-ENV:", "Body", NONE)?;
        xml.start("bn:", "submitBirthNotification", NONE)?;
        xml.start("bn:", "BirthNotification", NONE)?;
        document::children(
            notification,
            schema::BIRTH_NOTIFICATION,
            &Path::root("BirthNotification"),
            &mut Notification(xml),
        )?;
        xml.end("bn:", "BirthNotification")?;
        xml.end("bn:", "submitBirthNotification")?;
        xml.end("SOAP-ENV:", "Body")
    }

    /// The envelope's end tag.
    pub fn finish(mut self) -> Result<Vec<u8>, EncodeError> {
        self.0.end("SOAP-ENV:", "Envelope")?;
        let mut bytes = self.0.writer.into_inner();
        bytes.push(b'\n');
        Ok(bytes)
    }

    #[cfg(test)]
    pub fn xml(&mut self) -> &mut Xml {
        &mut self.0
    }
}
