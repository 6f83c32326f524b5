//! A small namespace-aware element tree over quick-xml, for the Examplia
//! mock: it keeps byte spans (to copy the X-Road header back unchanged) and
//! refuses what the registry refuses (not UTF-8, DOCTYPE, unknown entities).

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use sha2::{Digest, Sha256};

/// Deeper documents are refused: the published schema nests about 6 levels.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ns: Option<String>,
    pub local: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub ns: Option<String>,
    pub local: String,
    /// `xmlns` / `xmlns:p` declarations on this element: (prefix, "" for the default; URI).
    pub declarations: Vec<(String, String)>,
    pub attrs: Vec<Attr>,
    pub children: Vec<Element>,
    /// Text and CDATA directly inside, concatenated.
    pub text: String,
    /// Byte range of the element's content (between its tags).
    pub content: (usize, usize),
}

/// Why a document is refused; names no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum XmlError {
    NotUtf8,
    Doctype,
    TooDeep,
    Malformed(String),
}

impl XmlError {
    pub fn message(&self) -> String {
        match self {
            XmlError::NotUtf8 => "The message is not UTF-8.".into(),
            XmlError::Doctype => "A DOCTYPE is not allowed.".into(),
            XmlError::TooDeep => "The document nests elements too deeply.".into(),
            XmlError::Malformed(why) => format!("The message is not well-formed XML: {why}."),
        }
    }
}

impl Element {
    /// The first child with this namespace and local name.
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, local))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, local))
    }

    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.local == local
    }

    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.local == local)
            .map(|a| a.value.as_str())
    }

    /// Text of a child, if present.
    pub fn child_text(&self, ns: &str, local: &str) -> Option<&str> {
        self.child(ns, local).map(|c| c.text.as_str())
    }

    /// A digest of the content after parsing: prefixes, attribute order and
    /// whitespace between elements do not count; every value does.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        self.feed(&mut hasher);
        hex::encode(hasher.finalize())
    }

    fn feed(&self, h: &mut Sha256) {
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(b"<");
        field(self.ns.as_deref().unwrap_or_default().as_bytes());
        field(self.local.as_bytes());
        let mut attrs: Vec<&Attr> = self.attrs.iter().collect();
        attrs.sort_by(|a, b| (&a.ns, &a.local).cmp(&(&b.ns, &b.local)));
        for a in attrs {
            field(b"@");
            field(a.ns.as_deref().unwrap_or_default().as_bytes());
            field(a.local.as_bytes());
            field(a.value.as_bytes());
        }
        if !self.children.is_empty() && self.text.trim().is_empty() {
            // Element content: whitespace between elements is not content.
        } else {
            field(b"#");
            field(self.text.as_bytes());
        }
        for c in &self.children {
            c.feed(h);
        }
        h.update(b">");
    }
}

/// Parse a whole document into its root element.
pub(crate) fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let bytes = strip_bom(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = NsReader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let (resolved, event) = reader
            .read_resolved_event()
            .map_err(|e| XmlError::Malformed(error_kind(&e)))?;
        let ns = namespace(&resolved)?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Decl(decl) => {
                if let Some(Ok(encoding)) = decl.encoding() {
                    if !encoding.eq_ignore_ascii_case(b"utf-8") {
                        return Err(XmlError::NotUtf8);
                    }
                }
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::Malformed("content after the root element".into()));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(element(&reader, &start, ns, (after, after))?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(XmlError::Malformed("content after the root element".into()));
                }
                let el = element(&reader, &start, ns, (after, after))?;
                close(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let mut el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unexpected end tag".into()))?;
                el.content.1 = before;
                close(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let s = t
                    .decode()
                    .map_err(|_| XmlError::Malformed("bad text".into()))?;
                push_text(&mut stack, &s)?;
            }
            Event::CData(c) => {
                let s = c
                    .decode()
                    .map_err(|_| XmlError::Malformed("bad CDATA".into()))?;
                push_text(&mut stack, &s)?;
            }
            Event::GeneralRef(r) => {
                let resolved = resolve_reference(&r)?;
                push_text(&mut stack, &resolved)?;
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    root.ok_or_else(|| XmlError::Malformed("no root element".into()))
}

/// A UTF-8 byte order mark is tolerated; spans are relative to what follows it.
pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

fn error_kind(e: &quick_xml::Error) -> String {
    // quick-xml's messages can quote the document; keep only the kind.
    match e {
        quick_xml::Error::Syntax(_) => "syntax error".into(),
        quick_xml::Error::IllFormed(_) => "ill-formed".into(),
        quick_xml::Error::Encoding(_) => "encoding error".into(),
        quick_xml::Error::Escape(_) => "bad escape".into(),
        quick_xml::Error::Namespace(_) => "bad namespace".into(),
        _ => "parse error".into(),
    }
}

fn namespace(resolved: &ResolveResult<'_>) -> Result<Option<String>, XmlError> {
    match resolved {
        ResolveResult::Bound(ns) => std::str::from_utf8(ns.0)
            .map(|s| Some(s.to_string()))
            .map_err(|_| XmlError::NotUtf8),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(_) => Err(XmlError::Malformed("undeclared namespace prefix".into())),
    }
}

fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Result<String, XmlError> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Ok(c.to_string());
    }
    let name = r
        .decode()
        .map_err(|_| XmlError::Malformed("bad reference".into()))?;
    match name.as_ref() {
        "amp" => Ok("&".into()),
        "lt" => Ok("<".into()),
        "gt" => Ok(">".into()),
        "apos" => Ok("'".into()),
        "quot" => Ok("\"".into()),
        _ => Err(XmlError::Malformed("undeclared entity".into())),
    }
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError::Malformed("text outside the root element".into())),
    }
}

fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn element(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    ns: Option<String>,
    content: (usize, usize),
) -> Result<Element, XmlError> {
    let local = utf8(start.local_name().into_inner())?;
    let mut declarations = Vec::new();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|_| XmlError::Malformed("bad attribute".into()))?;
        let key = attr.key;
        let value = attr
            .unescape_value()
            .map_err(|_| XmlError::Malformed("bad attribute value".into()))?
            .into_owned();
        let raw = utf8(key.as_ref())?;
        if raw == "xmlns" {
            declarations.push((String::new(), value));
        } else if let Some(prefix) = raw.strip_prefix("xmlns:") {
            declarations.push((prefix.to_string(), value));
        } else {
            let (resolved, local) = reader.resolve_attribute(key);
            attrs.push(Attr {
                ns: namespace(&resolved)?,
                local: utf8(local.into_inner())?,
                value,
            });
        }
    }
    Ok(Element {
        ns,
        local,
        declarations,
        attrs,
        children: Vec::new(),
        text: String::new(),
        content,
    })
}

fn utf8(bytes: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| XmlError::NotUtf8)
}

/// Escape text for element content.
pub(crate) fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Escape text for a double-quoted attribute value.
pub(crate) fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaces_text_and_spans() {
        let doc = r#"<?xml version="1.0"?><a:r xmlns:a="urn:a" xmlns="urn:d"><x k="1">t&amp;u<![CDATA[<v>]]></x><y/></a:r>"#;
        let root = parse(doc.as_bytes()).unwrap();
        assert!(root.is("urn:a", "r"));
        assert_eq!(
            root.declarations,
            vec![("a".into(), "urn:a".into()), ("".into(), "urn:d".into())]
        );
        let x = root.child("urn:d", "x").unwrap();
        assert_eq!(x.text, "t&u<v>");
        assert_eq!(x.attr("k"), Some("1"));
        assert!(root.child("urn:d", "y").is_some());
        let (s, e) = root.content;
        assert!(doc[s..e].starts_with("<x k=\"1\">") && doc[s..e].ends_with("<y/>"));
    }

    #[test]
    fn refuses_what_the_registry_refuses() {
        assert_eq!(parse(b"<a>\xff</a>"), Err(XmlError::NotUtf8));
        assert_eq!(
            parse(b"<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>"),
            Err(XmlError::Doctype)
        );
        assert!(matches!(parse(b"<a>&e;</a>"), Err(XmlError::Malformed(_))));
        assert!(matches!(parse(b"<a><b></a>"), Err(XmlError::Malformed(_))));
        assert!(matches!(parse(b"<p:a/>"), Err(XmlError::Malformed(_))));
        assert!(matches!(parse(b""), Err(XmlError::Malformed(_))));
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
        assert!(parse(b"\xEF\xBB\xBF<a/>").is_ok(), "a BOM is tolerated");
    }

    #[test]
    fn the_digest_ignores_prefixes_order_and_whitespace_only() {
        let a = parse(br#"<p:r xmlns:p="urn:x" b="2" a="1">  <p:v>1</p:v> </p:r>"#).unwrap();
        let b = parse(br#"<r xmlns="urn:x" a="1" b="2"><v>1</v></r>"#).unwrap();
        let c = parse(br#"<r xmlns="urn:x" a="1" b="2"><v>2</v></r>"#).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
    }
}
