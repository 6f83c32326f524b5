//! The record's path through the gateway, without I/O: a source payload becomes
//! a canonical record (decode, inbound mapping, validation), and a canonical
//! record becomes the bytes each route would send (outbound mapping, encoder).
//!
//! Intake, `translate` and (later) the delivery workers all go through here, so
//! what `translate` shows is what the gateway sends.

mod json_bounded;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::config::{Config, RouteConfig, SourceConfig, SourceFormat};
use crate::locations::LocationList;
use crate::mapping::formats::{self, EncodeError, Encoded};
use crate::mapping::{self, LeftOut, Mapping, MappingError, Mappings, RouteContext};
use crate::model::{RecordId, RecordType};
use crate::policy::{
    self, Action, ConsentState, Decision, Outcome, Policies, PolicyLoadError, Redaction,
    json_pointer,
};
use crate::schema::{SchemaError, SchemaRegistry, Violation, cap_problems};
pub use json_bounded::{
    MAX_ARRAY_ITEMS, MAX_OBJECT_KEYS, ParseError, ShapeError, parse_bounded, parse_bounded_bytes,
};

/// A validated canonical record.
#[derive(Debug, Clone, PartialEq)]
pub struct Canonical {
    pub record_type: RecordType,
    pub record: Value,
}

/// A canonical record's `record_version` (1 when absent).
fn record_version(record: &Value) -> i64 {
    record
        .get("record_version")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

impl Canonical {
    pub fn version(&self) -> i64 {
        record_version(&self.record)
    }

    /// The subject key (model::subject_key) of the person this record is
    /// about, for the agency `client_id`; a consent record names its subject.
    pub fn subject(&self, client_id: &str) -> Option<String> {
        let (record_type, source_id) = match self.record_type {
            RecordType::Consent => {
                let subject = self.record.get("subject")?;
                (
                    subject.get("record_type")?.as_str()?,
                    subject.get("source_record_id")?.as_str()?,
                )
            }
            other => (
                other.as_str(),
                self.record.get("source_record_id")?.as_str()?,
            ),
        };
        Some(crate::model::subject_key(client_id, record_type, source_id))
    }

    /// The time the record itself states (notification or decision time), used
    /// as the injected timestamp where no clock may be read.
    pub fn stated_time(&self) -> Option<DateTime<Utc>> {
        for field in ["notified_at", "decided_at"] {
            if let Some(t) = self.record.get(field).and_then(Value::as_str)
                && let Ok(t) = DateTime::parse_from_rfc3339(t)
            {
                return Some(t.with_timezone(&Utc));
            }
        }
        self.record
            .get("registration_date")
            .and_then(Value::as_str)
            .and_then(full_date)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc())
    }
}

/// Why a route could not be rendered. Names rules and paths, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("no mapping is loaded for route {0}")]
    NoMapping(String),
    #[error("mapping {file}: {source}")]
    Mapping {
        file: String,
        #[source]
        source: MappingError,
    },
    #[error("encoding: {0}")]
    Encode(#[from] EncodeError),
}

/// Config, schemas, mappings and policies, compiled once and checked against
/// each other: everything `serve`, `translate`, `manifest` and `config check`
/// need. Built only by [`Pipeline::load`], so a pipeline always passed the
/// category check.
pub struct Pipeline {
    config: Arc<Config>,
    schemas: Arc<SchemaRegistry>,
    mappings: Arc<Mappings>,
    policies: Arc<Policies>,
    /// Per destination that keeps one: its location list as it is now.
    locations: BTreeMap<String, LocationHandle>,
}

/// A destination's current location list, replaced whole when the registry's
/// list is fetched again; renders take the list as it was when they began.
#[derive(Debug, Clone, Default)]
pub struct LocationHandle(Arc<RwLock<Arc<LocationList>>>);

impl LocationHandle {
    pub fn new(list: LocationList) -> LocationHandle {
        LocationHandle(Arc::new(RwLock::new(Arc::new(list))))
    }

    pub fn current(&self) -> Arc<LocationList> {
        // A poisoned lock still holds a whole list: it is only ever swapped.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, list: LocationList) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
    }
}

/// A location list file that does not load. Names the file and the problem.
#[derive(Debug, thiserror::Error)]
#[error("destinations.{destination}.locations: {file}: {problem}")]
pub struct LocationsError {
    pub destination: String,
    pub file: String,
    pub problem: String,
}

/// Why a pipeline does not load; each variant lists every problem of its kind.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("schemas do not load: {}", join(.0, "; "))]
    Schemas(Vec<SchemaError>),
    #[error("mappings do not load:\n{}", indent(.0))]
    Mappings(Vec<mapping::LoadError>),
    #[error("policies do not load:\n{}", indent(.0))]
    Policies(Vec<PolicyLoadError>),
    #[error("policies refuse what mappings read:\n{}", indent(.0))]
    Categories(Vec<CategoryError>),
    #[error("location lists do not load:\n{}", indent(.0))]
    Locations(Vec<LocationsError>),
}

fn join<T: std::fmt::Display>(items: &[T], separator: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(separator)
}

fn indent<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A mapping that reads a field of a sensitivity category its route's policy
/// neither allows nor removes. Names the file, line, path and category only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}:{line}: reads {path}, which holds {category} data that the policy of {route} neither allows nor removes"
)]
pub struct CategoryError {
    pub file: String,
    pub line: usize,
    pub path: String,
    pub category: &'static str,
    pub route: String,
}

/// A route's sharing decision, and the bytes it would send when it delivers.
pub struct Routed {
    pub decision: Decision,
    pub rendered: Option<Result<Encoded, RenderError>>,
}

impl Pipeline {
    /// Compile schemas, mappings and policies for `config`, and refuse any
    /// mapping that reads a category its route's policy does not allow.
    /// Pseudonym keys named in the config are handed to the policies here.
    pub fn load(config: Arc<Config>) -> Result<Pipeline, LoadError> {
        let schemas = SchemaRegistry::load().map_err(LoadError::Schemas)?;
        let mappings = mapping::load(&config, &schemas).map_err(LoadError::Mappings)?;
        let mut policies = policy::load(&config.policies_dir, &config.routes, &schemas)
            .map_err(LoadError::Policies)?;
        for (destination, key) in config.pseudonym_keys() {
            policies.set_pseudonym_key(destination, key.to_vec());
        }
        let refused = check_categories(&config, &schemas, &mappings, &policies);
        if !refused.is_empty() {
            return Err(LoadError::Categories(refused));
        }
        let locations = load_locations(&config).map_err(LoadError::Locations)?;
        Ok(Pipeline {
            config,
            schemas: Arc::new(schemas),
            mappings: Arc::new(mappings),
            policies: Arc::new(policies),
            locations,
        })
    }

    /// The location list of `destination`, if it keeps one.
    pub fn locations(&self, destination: &str) -> Option<&LocationHandle> {
        self.locations.get(destination)
    }

    /// Codes written in mapping files (a receiving office, say) that the
    /// destination's current location list does not resolve: `config check`
    /// reports them, since every record on that route would be denied.
    pub fn unresolved_mapping_codes(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for route in &self.config.routes {
            let (Some(mapping), Some(handle)) = (
                self.mappings.outbound.get(&route.name),
                self.locations.get(&route.destination),
            ) else {
                continue;
            };
            let list = handle.current();
            for rule in &mapping.rules {
                if let (Some(lookup), mapping::Input::Constant(value)) =
                    (rule.location, &rule.input)
                {
                    let code = value
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| value.to_string());
                    if let Err(e) = list.resolve(lookup, &code) {
                        problems.push(format!(
                            "{}:{}: {code}: {e} (destination {})",
                            self.mapping_name(mapping),
                            rule.line,
                            route.destination
                        ));
                    }
                }
            }
        }
        problems
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn schemas(&self) -> &Arc<SchemaRegistry> {
        &self.schemas
    }

    pub fn mappings(&self) -> &Mappings {
        &self.mappings
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Each route of the record's type with its sharing decision, given the
    /// subject's latest consent: what intake commits and answers at acceptance.
    /// The decisions list no redactions, and the record is copied only for a
    /// route whose places are checked (`check_places` reads what the policy
    /// lets through).
    pub fn decide_routes<'a>(
        &'a self,
        record: &Canonical,
        consent: Option<&ConsentState>,
    ) -> Vec<(&'a RouteConfig, Decision)> {
        self.config
            .routes_for(record.record_type)
            .map(|route| {
                let mut decision = match self.place_mapping(route) {
                    Some(mapping) => {
                        let (decision, minimised) = self.policies.decide_minimised(
                            &route.name,
                            record.record_type,
                            Cow::Borrowed(&record.record),
                            consent,
                        );
                        self.check_places(route, mapping, minimised, decision)
                    }
                    // Nothing at acceptance reads the minimised record.
                    None => self.policies.verdict(
                        &route.name,
                        record.record_type,
                        &record.record,
                        consent,
                    ),
                };
                // Acceptance answers whether and why; what is removed is
                // planned again before each send, so no route lists it here.
                decision.redactions.clear();
                (route, decision)
            })
            .collect()
    }

    /// The route's outbound mapping when acceptance must check the places it
    /// looks up: the destination has a location list and the mapping has
    /// rules that resolve places through it.
    fn place_mapping(&self, route: &RouteConfig) -> Option<&Mapping> {
        if !self.locations.contains_key(&route.destination) {
            return None;
        }
        self.mappings
            .outbound
            .get(&route.name)
            .filter(|m| m.rules.iter().any(|r| r.location.is_some()))
    }

    /// A route that would deliver is denied when a place the record names is
    /// unknown or closed in the registry's location list: the agency learns
    /// it at acceptance, and the other routes go on.
    /// `minimised` is the record the decision lets through (made by the
    /// policy while deciding, not made again here).
    fn check_places(
        &self,
        route: &RouteConfig,
        mapping: &Mapping,
        minimised: Option<Cow<'_, Value>>,
        decision: Decision,
    ) -> Decision {
        let Some(minimised) = minimised else {
            return decision;
        };
        if decision.decision != Outcome::Deliver {
            return decision;
        }
        // Ids and time do not decide whether a place resolves. The record is
        // read where it is (the policy's copy only if it made one).
        let ctx = self.context_of_version(
            route,
            RecordId(uuid::Uuid::nil()),
            record_version(&minimised),
            DateTime::UNIX_EPOCH,
            1,
            None,
        );
        match mapping.unresolved_place(&minimised, &ctx) {
            Some(error) => deny_for_place(decision, &error),
            None => decision,
        }
    }

    /// Parse a request body as JSON within the configured nesting limit and
    /// the width bounds, held while it is parsed (`json_bounded`): nothing
    /// deeper or wider than a record can be is ever built.
    pub fn parse_json(&self, body: &[u8]) -> Result<Value, Vec<Violation>> {
        let max = self.config.server.max_json_depth;
        // UTF-8 checked once for the whole body rather than string by string;
        // a body that is not UTF-8 gets the byte parser's error, as before.
        let parsed = match std::str::from_utf8(body) {
            Ok(text) => parse_bounded(text, max),
            Err(_) => parse_bounded_bytes(body, max),
        };
        parsed.map_err(|e| match e {
            ParseError::Shape(ShapeError::TooDeep) => vec![Violation {
                pointer: String::new(),
                code: "max_depth",
                message: format!("nests objects and arrays deeper than {max} levels"),
            }],
            ParseError::Shape(ShapeError::TooWide(violation)) => vec![violation],
            ParseError::Malformed(e) => vec![Violation {
                pointer: String::new(),
                code: "malformed_json",
                message: format!(
                    "is not well-formed JSON (error at line {}, column {})",
                    e.line(),
                    e.column()
                ),
            }],
        })
    }

    /// Turn a parsed payload from `source` into a validated canonical record,
    /// or list every problem (pointers into the payload for decoding problems,
    /// into the canonical record for what the mapping produced).
    pub fn canonicalize(
        &self,
        source: &SourceConfig,
        payload: &Value,
    ) -> Result<Canonical, Vec<Violation>> {
        self.canonicalize_reporting(source, payload).map(|(c, _)| c)
    }

    /// [`Pipeline::canonicalize`], with the values the inbound mapping left
    /// out (an agency instance's own lookup values in fields that can be done
    /// without), which intake and `translate` report.
    pub fn canonicalize_reporting(
        &self,
        source: &SourceConfig,
        payload: &Value,
    ) -> Result<(Canonical, Vec<LeftOut>), Vec<Violation>> {
        match source.format {
            SourceFormat::Canonical => {
                self.validated(record_type_of(payload)?, payload.clone(), Vec::new())
            }
            format => {
                let (record_type, record, left_out) = self
                    .map_inbound(source, format, payload)
                    .map_err(cap_problems)?;
                self.validated(record_type, record, left_out)
            }
        }
    }

    /// [`Pipeline::canonicalize_reporting`] of a payload the caller no longer
    /// needs: a canonical record is validated in place, not copied.
    pub fn canonicalize_owned(
        &self,
        source: &SourceConfig,
        payload: Value,
    ) -> Result<(Canonical, Vec<LeftOut>), Vec<Violation>> {
        match source.format {
            SourceFormat::Canonical => {
                self.validated(record_type_of(&payload)?, payload, Vec::new())
            }
            _ => self.canonicalize_reporting(source, &payload),
        }
    }

    /// `record` once it passes its schema and the semantic rules.
    fn validated(
        &self,
        record_type: RecordType,
        record: Value,
        left_out: Vec<LeftOut>,
    ) -> Result<(Canonical, Vec<LeftOut>), Vec<Violation>> {
        let mut violations = self.schemas.validate(record_type, &record);
        if violations.is_empty() {
            violations = semantic_violations(record_type, &record);
        }
        if violations.is_empty() {
            Ok((
                Canonical {
                    record_type,
                    record,
                },
                left_out,
            ))
        } else {
            Err(violations)
        }
    }

    fn map_inbound(
        &self,
        source: &SourceConfig,
        format: SourceFormat,
        payload: &Value,
    ) -> Result<(RecordType, Value, Vec<LeftOut>), Vec<Violation>> {
        let tree = formats::decode(format, payload)?;
        let Some(((_, record_type), mapping)) = self
            .mappings()
            .inbound
            .iter()
            .find(|((name, _), _)| *name == source.name)
        else {
            return Err(vec![Violation {
                pointer: String::new(),
                code: "unsupported_source",
                message: "no inbound mapping is configured for this source".into(),
            }]);
        };
        // Inbound mappings read only the payload; the context is a placeholder.
        let ctx = RouteContext {
            record_id: RecordId(uuid::Uuid::nil()),
            record_version: 1,
            route: format!("inbound:{}", source.name),
            destination: String::new(),
            timestamp: DateTime::UNIX_EPOCH,
            attempt: 1,
            subject: None,
            locations: None,
            legal_basis: None,
        };
        let (record, left_out) = mapping
            .apply_leaving_out_unknown_codes(&tree, &ctx)
            .map_err(|e| {
                vec![Violation {
                    pointer: String::new(),
                    code: "unmappable",
                    message: format!("the payload cannot be mapped: {e}"),
                }]
            })?;
        let left_out = left_out
            .into_iter()
            .map(|l| LeftOut {
                from: format!("{}/{}", formats::payload_root(format), l.from),
                ..l
            })
            .collect();
        Ok((*record_type, record, left_out))
    }

    /// How a route's decision reports what the inbound mapping left out: a
    /// `drop` by the rule `unknown-lookup-value`, at the payload path.
    pub fn left_out_redactions(&self, left_out: &[LeftOut]) -> Vec<Redaction> {
        left_out
            .iter()
            .map(|l| Redaction {
                pointer: l.from.clone(),
                action: Action::Drop,
                reason: format!(
                    "unknown-lookup-value: code list {} does not know this value (inbound mapping line {}); left out",
                    l.codelist, l.line
                ),
            })
            .collect()
    }

    /// The bytes `route` would send for `record`.
    pub fn render(
        &self,
        route: &RouteConfig,
        record: &Canonical,
        ctx: &RouteContext,
    ) -> Result<Encoded, RenderError> {
        self.render_record(route, &record.record, ctx)
    }

    /// [`Pipeline::render`] of a canonical record's JSON.
    fn render_record(
        &self,
        route: &RouteConfig,
        record: &Value,
        ctx: &RouteContext,
    ) -> Result<Encoded, RenderError> {
        let mapping = self
            .mappings()
            .outbound
            .get(&route.name)
            .ok_or_else(|| RenderError::NoMapping(route.name.clone()))?;
        let tree = mapping
            .apply(record, ctx)
            .map_err(|source| RenderError::Mapping {
                file: self.mapping_name(mapping),
                source,
            })?;
        let destination = &self.config.destinations[&route.destination];
        Ok(formats::encode_for(destination, &tree, ctx)?)
    }

    /// Decide whether `record` may go through `route` and, if so, render the
    /// minimised record: the policy runs before the mapping, so a field the
    /// policy removes never reaches the encoder.
    ///
    /// A record passed owned is minimised in place rather than copied: pass
    /// it so on its last route.
    pub fn route(
        &self,
        route: &RouteConfig,
        record: Cow<'_, Canonical>,
        ctx: &RouteContext,
    ) -> Routed {
        self.route_with_consent(route, record, None, ctx)
    }

    /// [`Pipeline::route`], with the latest consent recorded for the record's
    /// subject (already decoded from its consent record), which overrides the
    /// record's own.
    pub fn route_with_consent(
        &self,
        route: &RouteConfig,
        record: Cow<'_, Canonical>,
        consent: Option<&ConsentState>,
        ctx: &RouteContext,
    ) -> Routed {
        let record_type = record.record_type;
        let record = match record {
            Cow::Borrowed(c) => Cow::Borrowed(&c.record),
            Cow::Owned(c) => Cow::Owned(c.record),
        };
        let (decision, minimised) =
            self.policies
                .decide_minimised(&route.name, record_type, record, consent);
        let rendered = minimised.map(|minimised| {
            let ctx = RouteContext {
                legal_basis: decision.legal_basis,
                ..ctx.clone()
            };
            self.render_record(route, &minimised, &ctx)
        });
        // A place the registry does not know (or has closed since acceptance)
        // denies the route, as at acceptance; it is not a rendering failure.
        if let Some(Err(RenderError::Mapping {
            source: error @ MappingError::Location { .. },
            ..
        })) = &rendered
        {
            return Routed {
                decision: deny_for_place(decision, error),
                rendered: None,
            };
        }
        Routed { decision, rendered }
    }

    /// A mapping file's name relative to the mappings folder, so that reasons
    /// and the manifest read the same on every machine.
    pub fn mapping_name(&self, mapping: &Mapping) -> String {
        mapping
            .file
            .strip_prefix(&self.config.mappings_dir)
            .map(|p| format!("mappings/{}", p.display()))
            .unwrap_or_else(|_| mapping.file.display().to_string())
    }

    /// The route context of `record` on `route`.
    pub fn context(
        &self,
        route: &RouteConfig,
        record_id: RecordId,
        record: &Canonical,
        timestamp: DateTime<Utc>,
        attempt: u32,
        subject: Option<String>,
    ) -> RouteContext {
        self.context_of_version(
            route,
            record_id,
            record.version(),
            timestamp,
            attempt,
            subject,
        )
    }

    fn context_of_version(
        &self,
        route: &RouteConfig,
        record_id: RecordId,
        record_version: i64,
        timestamp: DateTime<Utc>,
        attempt: u32,
        subject: Option<String>,
    ) -> RouteContext {
        RouteContext {
            record_id,
            record_version,
            route: route.name.clone(),
            destination: route.destination.clone(),
            timestamp,
            attempt,
            subject,
            locations: self
                .locations
                .get(&route.destination)
                .map(LocationHandle::current),
            legal_basis: None,
        }
    }
}

/// The route's decision once a place did not resolve: deny, naming the rule
/// line, the input path and the reason code (never the place's code or name).
fn deny_for_place(decision: Decision, error: &MappingError) -> Decision {
    let reason = match error {
        MappingError::Location { unresolved, .. } => format!("{}: {error}", unresolved.code()),
        other => other.to_string(),
    };
    Decision {
        decision: Outcome::Deny,
        reason,
        legal_basis: None,
        rule: "location-list".into(),
        redactions: Vec::new(),
        ..decision
    }
}

/// Read every destination's location list file.
fn load_locations(
    config: &Config,
) -> Result<BTreeMap<String, LocationHandle>, Vec<LocationsError>> {
    let mut lists = BTreeMap::new();
    let mut errors = Vec::new();
    for d in config.destinations.values() {
        let Some(l) = &d.locations else { continue };
        let error = |problem: String| LocationsError {
            destination: d.name.clone(),
            file: l.file.display().to_string(),
            problem,
        };
        // The file's 2.x `validUntil` dates are read against the start-up
        // time; the refresh reads them against its own.
        match std::fs::read(&l.file) {
            Ok(bytes) => match LocationList::parse(&bytes, chrono::Utc::now()) {
                Ok(list) => {
                    lists.insert(d.name.clone(), LocationHandle::new(list));
                }
                Err(e) => errors.push(error(e.to_string())),
            },
            Err(e) => errors.push(error(format!("cannot read: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(lists)
    } else {
        Err(errors)
    }
}

/// Refuse a mapping that reads a field of a sensitivity category its route's
/// policy does not allow (and does not remove): deny by default, at load time.
pub fn check_categories(
    config: &Config,
    schemas: &SchemaRegistry,
    mappings: &Mappings,
    policies: &Policies,
) -> Vec<CategoryError> {
    let mut errors = Vec::new();
    for route in &config.routes {
        let Some(mapping) = mappings.outbound.get(&route.name) else {
            continue;
        };
        for rule in &mapping.rules {
            for read in rule.record_reads() {
                for field in schemas.sensitive_fields(route.record_type) {
                    if field.read_by(&read)
                        && !policies.permits(&route.name, &field.path, field.category)
                    {
                        errors.push(CategoryError {
                            file: mapping.file.display().to_string(),
                            line: rule.line,
                            path: match read.strip_prefix('/') {
                                Some(path) => path.to_string(),
                                None => "record".into(),
                            },
                            category: field.category.as_str(),
                            route: route.name.clone(),
                        });
                    }
                }
            }
        }
    }
    errors
}

/// Which canonical record type a canonical payload claims to be.
pub fn record_type_of(payload: &Value) -> Result<RecordType, Vec<Violation>> {
    payload
        .get("record_type")
        .and_then(Value::as_str)
        .and_then(RecordType::parse)
        .ok_or_else(|| {
            vec![Violation {
                pointer: "/record_type".into(),
                code: "record_type",
                message:
                    "must be one of \"birth-notification\", \"child-protection-case\", \"consent\""
                        .into(),
            }]
        })
}

/// A `YYYY-MM-DD` date, as `NaiveDate::parse_from_str(s, "%Y-%m-%d")`
/// reads it, without parsing the format string for every record.
fn full_date(s: &str) -> Option<NaiveDate> {
    use chrono::format::{Item, Numeric, Pad, Parsed, parse};
    const FULL_DATE: [Item<'static>; 5] = [
        Item::Numeric(Numeric::Year, Pad::Zero),
        Item::Literal("-"),
        Item::Numeric(Numeric::Month, Pad::Zero),
        Item::Literal("-"),
        Item::Numeric(Numeric::Day, Pad::Zero),
    ];
    let mut parsed = Parsed::new();
    parse(&mut parsed, s, FULL_DATE.iter()).ok()?;
    parsed.to_naive_date().ok()
}

/// Rules a JSON Schema cannot state: dates in the future relative to the
/// record's own notification time, a parent born after the child.
pub fn semantic_violations(record_type: RecordType, record: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    if record_type != RecordType::BirthNotification {
        return out;
    }
    let date = |pointer: &str| {
        json_pointer(record, pointer)
            .and_then(Value::as_str)
            .and_then(full_date)
    };
    // The local date of notification: the offset in notified_at is the place's.
    let notified = record
        .get("notified_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.date_naive());
    let birth = date("/child/date_of_birth");
    if let (Some(birth), Some(notified)) = (birth, notified)
        && birth > notified
    {
        out.push(Violation {
            pointer: "/child/date_of_birth".into(),
            code: "date_in_future",
            message: "is after the date of notification (notified_at)".into(),
        });
    }
    if let (Some(year), Some(notified)) = (
        json_pointer(record, "/child/estimated_year_of_birth").and_then(Value::as_i64),
        notified,
    ) && year > i64::from(chrono::Datelike::year(&notified))
    {
        out.push(Violation {
            pointer: "/child/estimated_year_of_birth".into(),
            code: "date_in_future",
            message: "is after the year of notification (notified_at)".into(),
        });
    }
    for pointer in ["/mother/date_of_birth", "/father/date_of_birth"] {
        if let (Some(parent_birth), Some(birth)) = (date(pointer), birth)
            && parent_birth >= birth
        {
            out.push(Violation {
                pointer: pointer.into(),
                code: "parent_born_after_child",
                message: "must be before the child's date of birth".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    proptest! {
        #[test]
        fn full_date_reads_what_the_format_string_reads(
            s in prop_oneof!["[0-9]{4}-[0-9]{2}-[0-9]{2}", "[0-9 +-]{0,14}", "[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}[ Tx]?"]
        ) {
            prop_assert_eq!(full_date(&s), NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok());
        }

        /// `parse_json` reads UTF-8 text with `from_str`: the same value, or
        /// an error at the same place, as the byte parser.
        #[test]
        fn text_and_byte_parsers_agree(s in r#"[{}\[\]",:0-9.eE+\-a-z \\\nu]{0,40}"#) {
            let text = serde_json::from_str::<Value>(&s).map_err(|e| (e.line(), e.column()));
            let bytes = serde_json::from_slice::<Value>(s.as_bytes()).map_err(|e| (e.line(), e.column()));
            prop_assert_eq!(text, bytes);
        }
    }

    #[test]
    fn a_birth_after_notification_is_in_the_future() {
        let record = json!({
            "notified_at": "2026-10-22T00:10:00+02:00",
            "child": {"date_of_birth": "2026-10-23"},
            "mother": {"date_of_birth": "2026-10-23"}
        });
        let v = semantic_violations(RecordType::BirthNotification, &record);
        let codes: Vec<_> = v.iter().map(|v| (v.pointer.as_str(), v.code)).collect();
        assert_eq!(
            codes,
            [
                ("/child/date_of_birth", "date_in_future"),
                ("/mother/date_of_birth", "parent_born_after_child")
            ]
        );
    }

    #[test]
    fn the_local_date_of_notification_counts_not_utc() {
        // 00:10 at UTC+2 on the 22nd is the 21st in UTC; a birth on the 22nd is fine.
        let record = json!({
            "notified_at": "2026-10-22T00:10:00+02:00",
            "child": {"date_of_birth": "2026-10-22"}
        });
        assert!(semantic_violations(RecordType::BirthNotification, &record).is_empty());
    }

    #[test]
    fn stated_time_comes_from_the_record() {
        let c = Canonical {
            record_type: RecordType::Consent,
            record: json!({"decided_at": "2026-01-02T03:04:05Z"}),
        };
        assert_eq!(
            c.stated_time().unwrap().to_rfc3339(),
            "2026-01-02T03:04:05+00:00"
        );
    }
}
