//! Examplia's content rules (README §5), checked after the XSD. A breach of
//! an ERROR rule gives a `REJECTED` receipt; WARNINGs ride on `ACCEPTED`.
//! Messages name fields and rules, never values.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use unicode_normalization::is_nfc;

use super::ExampliaSettings;
use super::limits::ext;
use super::xml::Element;

pub(crate) const BN: &str = "urn:examplia:crvs:birth-notification:1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub code: &'static str,
    pub severity: Severity,
    pub path: String,
    pub message: String,
}

fn error(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        code,
        severity: Severity::Error,
        path: path.into(),
        message: message.into(),
    }
}

fn warning(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        severity: Severity::Warning,
        ..error(code, path, message)
    }
}

const ROOT: &str = "/BirthNotification";

/// Every rule the notification breaks. `possible_duplicate` says whether
/// another notification has the same mother identifier, birth date and order.
pub(crate) fn check(
    bn: &Element,
    now: DateTime<Utc>,
    settings: &ExampliaSettings,
    possible_duplicate: bool,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    nfc(bn, ROOT, &mut problems);
    let today = now.with_timezone(&ext()).date_naive();
    let child = bn.child(BN, "Child");
    let place = child.and_then(|c| c.child(BN, "PlaceOfBirth"));
    let place_type = place.and_then(|p| p.child_text(BN, "Type"));
    let country = place.and_then(|p| p.child_text(BN, "CountryOfBirth"));
    let dob = child
        .and_then(|c| c.child_text(BN, "DateOfBirth"))
        .and_then(date);
    notified_at(bn, now, dob, &mut problems);
    if let Some(child) = child {
        child_dates(child, today, country, place_type, &mut problems);
    }
    if let Some(place) = place {
        place_rules(place, settings, &mut problems);
    }
    birth_order(bn, &mut problems);
    for parent in ["Mother", "Father"] {
        if let Some(p) = bn.child(BN, parent) {
            parent_rules(p, parent, dob, today, &mut problems);
        }
    }
    if bn.child_text(BN, "LegalBasis") == Some("CONSENT")
        && bn.child(BN, "ConsentReference").is_none()
    {
        problems.push(error(
            "CONSENT_REFERENCE_MISSING",
            format!("{ROOT}/ConsentReference"),
            "ConsentReference is required when LegalBasis is CONSENT.",
        ));
    }
    if possible_duplicate {
        problems.push(warning(
            "POSSIBLE_DUPLICATE",
            format!("{ROOT}/Mother/Identifiers"),
            "Another notification has the same mother identifier, date of birth and birth order.",
        ));
    }
    problems
}

/// The keys POSSIBLE_DUPLICATE compares: one per mother identifier.
pub(crate) fn birth_signatures(bn: &Element) -> Vec<String> {
    let dob = bn
        .child(BN, "Child")
        .and_then(|c| c.child_text(BN, "DateOfBirth"))
        .unwrap_or_default();
    let order = bn.child_text(BN, "BirthOrder").unwrap_or_default();
    let Some(ids) = bn
        .child(BN, "Mother")
        .and_then(|m| m.child(BN, "Identifiers"))
    else {
        return Vec::new();
    };
    if dob.is_empty() {
        return Vec::new();
    }
    ids.children_named(BN, "Identifier")
        .map(|i| {
            format!(
                "{}:{}:{}|{dob}|{order}",
                i.attr("scheme").unwrap_or_default(),
                i.attr("issuer").unwrap_or_default(),
                i.text
            )
        })
        .collect()
}

fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Every text and attribute value in NFC; the registry never normalises.
fn nfc(el: &Element, path: &str, problems: &mut Vec<Problem>) {
    if !is_nfc(&el.text) {
        problems.push(error("NOT_NFC", path, "The value is not in Unicode NFC."));
    }
    for a in &el.attrs {
        if !is_nfc(&a.value) {
            problems.push(error(
                "NOT_NFC",
                format!("{path}/@{}", a.local),
                "The value is not in Unicode NFC.",
            ));
        }
    }
    for (name, index, child) in indexed(el) {
        nfc(child, &step(path, name, index), problems);
    }
}

/// Children with their 1-based index among same-named siblings (None when unique).
pub(crate) fn indexed(el: &Element) -> Vec<(&str, Option<usize>, &Element)> {
    el.children
        .iter()
        .map(|c| {
            let same: Vec<_> = el.children.iter().filter(|o| o.local == c.local).collect();
            let index = (same.len() > 1)
                .then(|| same.iter().position(|o| std::ptr::eq(*o, c)).map(|p| p + 1))
                .flatten();
            (c.local.as_str(), index, c)
        })
        .collect()
}

/// A path step; names that a Path cannot carry stop at the parent.
pub(crate) fn step(parent: &str, name: &str, index: Option<usize>) -> String {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid {
        return parent.to_string();
    }
    match index {
        Some(i) => format!("{parent}/{name}[{i}]"),
        None => format!("{parent}/{name}"),
    }
}

fn notified_at(
    bn: &Element,
    now: DateTime<Utc>,
    dob: Option<NaiveDate>,
    problems: &mut Vec<Problem>,
) {
    let Some(at) = bn
        .child_text(BN, "NotifiedAt")
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    else {
        return;
    };
    if at.to_utc() > now + TimeDelta::minutes(5) {
        problems.push(error(
            "NOTIFIED_AT_IN_FUTURE",
            format!("{ROOT}/NotifiedAt"),
            "NotifiedAt is more than 5 minutes after receipt.",
        ));
    }
    if let Some(dob) = dob {
        if (at.date_naive() - dob).num_days() > 30 {
            problems.push(warning(
                "LATE_NOTIFICATION",
                format!("{ROOT}/NotifiedAt"),
                "The notification is more than 30 days after the birth.",
            ));
        }
    }
}

fn child_dates(
    child: &Element,
    today: NaiveDate,
    country: Option<&str>,
    place_type: Option<&str>,
    problems: &mut Vec<Problem>,
) {
    let path = format!("{ROOT}/Child");
    if let Some(dob) = child.child_text(BN, "DateOfBirth").and_then(date) {
        // One extra day for births abroad, east of EXT.
        let latest = if country == Some("EXA") {
            today
        } else {
            today + TimeDelta::days(1)
        };
        if dob > latest {
            problems.push(error(
                "DATE_IN_FUTURE",
                format!("{path}/DateOfBirth"),
                "The date of birth is later than the current date in Examplia Time.",
            ));
        }
        if too_old(dob, today) {
            problems.push(error(
                "CHILD_TOO_OLD",
                format!("{path}/DateOfBirth"),
                "The child is 18 or older.",
            ));
        }
    }
    for name in ["EstimatedYearOfBirth", "EstimatedAgeMonths"] {
        let Some(estimate) = child.child(BN, name) else {
            continue;
        };
        let reason = estimate.attr("reason").unwrap_or_default();
        let allowed = match reason {
            "BORN_IN_TRANSIT" => place_type == Some("IN_TRANSIT"),
            "UNDOCUMENTED_BIRTH" => place_type != Some("HEALTH_FACILITY"),
            _ => true,
        };
        if !allowed {
            problems.push(error(
                "ESTIMATE_NOT_ALLOWED",
                format!("{path}/{name}/@reason"),
                "This estimate reason is not allowed with this place of birth type.",
            ));
        }
        let year: Option<i32> = estimate.text.trim().parse().ok();
        if name == "EstimatedYearOfBirth"
            && year.is_some_and(|y| today.year().saturating_sub(y) > 18)
        {
            problems.push(error(
                "CHILD_TOO_OLD",
                format!("{path}/{name}"),
                "The child is 18 or older.",
            ));
        }
        if year.is_some_and(|y| y > today.year()) && name == "EstimatedYearOfBirth" {
            problems.push(error(
                "DATE_IN_FUTURE",
                format!("{path}/{name}"),
                "The estimated year is in the future.",
            ));
        }
    }
}

fn too_old(dob: NaiveDate, today: NaiveDate) -> bool {
    dob.with_year(dob.year() + 18)
        .or_else(|| dob.succ_opt().and_then(|d| d.with_year(d.year() + 18)))
        .is_some_and(|eighteenth| eighteenth <= today)
}

fn place_rules(place: &Element, settings: &ExampliaSettings, problems: &mut Vec<Problem>) {
    let path = format!("{ROOT}/Child/PlaceOfBirth");
    let place_type = place.child_text(BN, "Type").unwrap_or_default();
    let country = place.child_text(BN, "CountryOfBirth");
    let mut incomplete =
        |message: &str| problems.push(error("PLACE_INCOMPLETE", path.clone(), message));
    if place_type == "HEALTH_FACILITY"
        && country == Some("EXA")
        && place.child(BN, "FacilityCode").is_none()
    {
        incomplete(
            "FacilityCode is required when the place of birth is a health facility in Examplia.",
        );
    }
    if country == Some("EXA") && place.child(BN, "AdminArea").is_none() {
        incomplete("AdminArea is required when the country of birth is Examplia.");
    }
    if country.is_none() && place_type != "IN_TRANSIT" {
        incomplete("CountryOfBirth may be omitted only for a birth in transit.");
    }
    if let (Some(code), Some(register)) = (place.child_text(BN, "AdminArea"), &settings.admin_areas)
    {
        if !register.contains(code) {
            problems.push(error(
                "ADMIN_AREA_UNKNOWN",
                format!("{path}/AdminArea"),
                "The code is not in the Administrative Areas Register.",
            ));
        }
    }
    if let (Some(code), Some(list)) = (place.child_text(BN, "FacilityCode"), &settings.facilities) {
        if !list.contains(code) {
            problems.push(warning(
                "FACILITY_UNKNOWN",
                format!("{path}/FacilityCode"),
                "The code is not in the Master Facility List; kept as sent.",
            ));
        }
    }
}

fn birth_order(bn: &Element, problems: &mut Vec<Problem>) {
    let max = match bn.child_text(BN, "BirthType") {
        Some("SINGLE") => 1,
        Some("TWIN") => 2,
        Some("TRIPLET") => 3,
        Some("HIGHER_MULTIPLE") => 9,
        _ => return,
    };
    let order: Option<u32> = bn.child_text(BN, "BirthOrder").and_then(|s| s.parse().ok());
    if order.is_some_and(|o| o < 1 || o > max) {
        problems.push(error(
            "BIRTH_ORDER_INCONSISTENT",
            format!("{ROOT}/BirthOrder"),
            "BirthOrder does not fit BirthType.",
        ));
    }
}

fn parent_rules(
    parent: &Element,
    name: &str,
    child_dob: Option<NaiveDate>,
    today: NaiveDate,
    problems: &mut Vec<Problem>,
) {
    let path = format!("{ROOT}/{name}");
    if let Some(n) = parent.child(BN, "Name") {
        transliteration(n, &format!("{path}/Name"), problems);
    }
    let dob = parent.child_text(BN, "DateOfBirth").and_then(date);
    if dob.is_some_and(|d| d > today) {
        problems.push(error(
            "DATE_IN_FUTURE",
            format!("{path}/DateOfBirth"),
            "The date of birth is in the future.",
        ));
    }
    if name == "Mother" {
        let age = match (dob, child_dob) {
            (Some(d), Some(c)) => c.years_since(d).map(i64::from),
            _ => parent
                .child_text(BN, "AgeYears")
                .and_then(|a| a.parse().ok()),
        };
        if age.is_some_and(|a| !(12..=55).contains(&a)) {
            problems.push(warning(
                "PARENT_AGE_UNUSUAL",
                format!("{path}/DateOfBirth"),
                "The mother's age at the birth is under 12 or over 55.",
            ));
        }
    }
    if let Some(ids) = parent.child(BN, "Identifiers") {
        identifiers(ids, &format!("{path}/Identifiers"), problems);
    }
}

fn transliteration(name: &Element, path: &str, problems: &mut Vec<Problem>) {
    for (field, latin) in [
        ("GivenNames", "GivenNamesLatin"),
        ("FamilyName", "FamilyNameLatin"),
    ] {
        let Some(script) = name.child(BN, field).and_then(|f| f.attr("script")) else {
            continue;
        };
        if script != "Latn" && name.child(BN, latin).is_none() {
            problems.push(warning(
                "TRANSLITERATION_MISSING",
                format!("{path}/{field}"),
                format!("A name not in Latin script has no {latin}."),
            ));
        }
    }
}

fn identifiers(ids: &Element, path: &str, problems: &mut Vec<Problem>) {
    for (name, index, id) in indexed(ids) {
        if name != "Identifier" {
            continue;
        }
        let at = step(path, name, index);
        let scheme = id.attr("scheme").unwrap_or_default();
        let issuer = id.attr("issuer");
        let mut invalid = |suffix: &str, message: &str| {
            problems.push(error(
                "IDENTIFIER_INVALID",
                format!("{at}{suffix}"),
                message,
            ));
        };
        if matches!(scheme, "NATIONAL_ID" | "PASSPORT") && issuer.is_none() {
            invalid(
                "/@issuer",
                "issuer is required for a national id or a passport.",
            );
        }
        if scheme == "OTHER" && id.attr("schemeLabel").is_none() {
            invalid("/@schemeLabel", "schemeLabel is required for scheme OTHER.");
        }
        if scheme == "NATIONAL_ID" && issuer == Some("EXA") && !examplia_national_id(&id.text) {
            invalid(
                "",
                "An Examplia national id has 10 digits, the last a Luhn check digit.",
            );
        }
    }
}

/// Ten digits, the last a Luhn check digit.
pub(crate) fn examplia_national_id(s: &str) -> bool {
    if s.len() != 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = s
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    fn bn(body: &str) -> Element {
        parse(format!(r#"<BirthNotification xmlns="{BN}">{body}</BirthNotification>"#).as_bytes())
            .unwrap()
    }

    fn codes(problems: &[Problem]) -> Vec<(&'static str, &str)> {
        problems.iter().map(|p| (p.code, p.path.as_str())).collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-02T14:20:41Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn luhn() {
        assert!(examplia_national_id("1234567897"));
        assert!(!examplia_national_id("1234567890"));
        assert!(!examplia_national_id("123456789"));
    }

    #[test]
    fn future_birth_and_missing_facility_are_errors() {
        let doc = bn("<NotifiedAt>2026-11-02T16:20:00+02:00</NotifiedAt>\
            <Child><Sex>2</Sex><DateOfBirth>2026-11-03</DateOfBirth>\
            <PlaceOfBirth><Type>HEALTH_FACILITY</Type><AdminArea>EX01</AdminArea><CountryOfBirth>EXA</CountryOfBirth></PlaceOfBirth></Child>\
            <BirthType>TWIN</BirthType><BirthOrder>3</BirthOrder>\
            <Mother><Name><GivenNames script=\"Cyrl\">Анна</GivenNames></Name><AgeYears>30</AgeYears>\
            <Identifiers><Identifier scheme=\"NATIONAL_ID\" issuer=\"EXA\">1234567890</Identifier><Identifier scheme=\"PASSPORT\">X1</Identifier></Identifiers></Mother>\
            <LegalBasis>CONSENT</LegalBasis>");
        let problems = check(&doc, now(), &ExampliaSettings::default(), false);
        let found = codes(&problems);
        for expected in [
            ("DATE_IN_FUTURE", "/BirthNotification/Child/DateOfBirth"),
            ("PLACE_INCOMPLETE", "/BirthNotification/Child/PlaceOfBirth"),
            ("BIRTH_ORDER_INCONSISTENT", "/BirthNotification/BirthOrder"),
            (
                "TRANSLITERATION_MISSING",
                "/BirthNotification/Mother/Name/GivenNames",
            ),
            (
                "IDENTIFIER_INVALID",
                "/BirthNotification/Mother/Identifiers/Identifier[1]",
            ),
            (
                "IDENTIFIER_INVALID",
                "/BirthNotification/Mother/Identifiers/Identifier[2]/@issuer",
            ),
            (
                "CONSENT_REFERENCE_MISSING",
                "/BirthNotification/ConsentReference",
            ),
        ] {
            assert!(found.contains(&expected), "{expected:?} not in {found:?}");
        }
        let warning = problems
            .iter()
            .find(|p| p.code == "TRANSLITERATION_MISSING")
            .unwrap();
        assert_eq!(warning.severity, Severity::Warning);
        assert!(
            problems.iter().all(|p| !p.message.contains("1234567890")),
            "no value in messages"
        );
    }

    #[test]
    fn a_birth_abroad_may_be_one_day_ahead() {
        let doc = bn("<Child><Sex>1</Sex><DateOfBirth>2026-11-03</DateOfBirth>\
            <PlaceOfBirth><Type>HOME</Type><CountryOfBirth>NZL</CountryOfBirth></PlaceOfBirth></Child>");
        assert!(codes(&check(&doc, now(), &ExampliaSettings::default(), false)).is_empty());
    }

    #[test]
    fn text_must_be_nfc() {
        let doc = bn(
            "<Mother><Name><GivenNames script=\"Latn\">Jose\u{301}</GivenNames></Name></Mother>",
        );
        let found = codes(&check(&doc, now(), &ExampliaSettings::default(), false))
            .into_iter()
            .map(|(c, p)| format!("{c} {p}"))
            .collect::<Vec<_>>();
        assert_eq!(
            found,
            vec!["NOT_NFC /BirthNotification/Mother/Name/GivenNames"]
        );
    }

    #[test]
    fn estimates_follow_the_place() {
        let doc = bn(
            "<Child><Sex>1</Sex><EstimatedYearOfBirth reason=\"BORN_IN_TRANSIT\">2025</EstimatedYearOfBirth>\
            <PlaceOfBirth><Type>HOME</Type><CountryOfBirth>SDN</CountryOfBirth></PlaceOfBirth></Child>",
        );
        let problems = check(&doc, now(), &ExampliaSettings::default(), false);
        assert_eq!(
            codes(&problems),
            vec![(
                "ESTIMATE_NOT_ALLOWED",
                "/BirthNotification/Child/EstimatedYearOfBirth/@reason"
            )]
        );
    }
}
