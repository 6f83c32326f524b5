//! The Primero v2 case fields this gateway reads, with their JSON types.
//! Names and types come from Primero's seed forms (`db/configuration/forms/case/*.rb`
//! in primeroIMS/primero): `tick_box` and `lookup-yes-no` radios are yes/no,
//! `numeric_field` is an integer, multi-selects are lists of lookup ids.

/// How a field is written in a Primero payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Integer,
    /// A boolean, or the lookup-yes-no ids `"true"` / `"false"`.
    YesNo,
    /// A `date_field` (`YYYY-MM-DD`), passed on as written.
    Date,
    /// A `date_field` with `date_include_time`, of which the date is kept.
    DateOfDateTime,
    /// A multi-select: a list of lookup ids.
    TextList,
    /// A subform: a list of rows, each with these fields.
    Subform(&'static [(&'static str, Kind)]),
}

use Kind::*;

pub const CARE_ARRANGEMENTS: &str = "care_arrangements_section";

/// The identity-number fields, in the order the canonical list is built.
pub const IDENTIFIER_FIELDS: &[&str] = &[
    "national_id_no",
    "unhcr_individual_no",
    "unhcr_id_no",
    "un_no",
    "ration_card_no",
    "icrc_ref_no",
    "rc_id_no",
    "other_id_no",
];

const FAMILY_DETAILS: &[(&str, Kind)] = &[
    ("unique_id", Text),
    ("relation", Text),
    ("relation_name", Text),
    ("relation_is_alive", Text),
    ("relation_is_caregiver", YesNo),
    ("relation_age", Integer),
    ("relation_date_of_birth", Date),
    ("relation_sex", Text),
    ("relation_nationality", TextList),
    ("relation_location_current", Text),
    ("relation_telephone", Text),
];

const CARE_ARRANGEMENT_ROW: &[(&str, Kind)] = &[
    ("unique_id", Text),
    ("care_arrangements_type", Text),
    ("name_caregiver", Text),
    ("relationship_caregiver", Text),
    ("care_arrangement_started_date", Date),
];

const PROTECTION_CONCERN_DETAILS: &[(&str, Kind)] = &[
    ("unique_id", Text),
    ("protection_concern_type", Text),
    ("date_concern_identified", Text),
    ("concern_details", Text),
    ("concern_intervention_needed", Text),
    ("date_concern_intervention_needed_by", Date),
    ("concern_action_taken_already", YesNo),
    ("concern_action_taken_details", Text),
    ("concern_action_taken_date", Date),
    ("concern_is_resolved", YesNo),
];

const INCIDENT_DETAILS: &[(&str, Kind)] = &[
    ("unique_id", Text),
    ("incident_date", Date),
    ("cp_incident_violence_type", Text),
    ("incident_location", Text),
];

const SERVICES: &[(&str, Kind)] = &[
    ("unique_id", Text),
    ("service_type", Text),
    ("service_response_type", Text),
    ("service_implementing_agency", Text),
    ("service_appointment_date", Date),
    ("service_implemented", Text),
    ("service_implemented_day_time", DateOfDateTime),
    ("service_referral_notes", Text),
];

const NOTES: &[(&str, Kind)] = &[
    ("unique_id", Text),
    ("note_date", DateOfDateTime),
    ("note_subject", Text),
    ("note_text", Text),
];

/// Every field the decoder keeps. Anything else in a payload is dropped unread.
pub const FIELDS: &[(&str, Kind)] = &[
    // Record identity. Webhooks send `record_id`, the API `id`.
    ("id", Text),
    ("record_id", Text),
    ("case_id", Text),
    ("case_id_display", Text),
    ("short_id", Text),
    ("status", Text),
    ("registration_date", Date),
    // basic_identity
    ("name_first", Text),
    ("name_middle", Text),
    ("name_last", Text),
    ("name_nickname", Text),
    ("name_other", Text),
    ("sex", Text),
    ("age", Integer),
    ("date_of_birth", Date),
    ("estimated", YesNo),
    ("nationality", TextList),
    ("location_current", Text),
    ("national_id_no", Text),
    ("unhcr_individual_no", Text),
    ("unhcr_id_no", Text),
    ("un_no", Text),
    ("ration_card_no", Text),
    ("icrc_ref_no", Text),
    ("rc_id_no", Text),
    ("other_id_type", Text),
    ("other_id_no", Text),
    // other_identity_details
    ("ethnicity", TextList),
    ("religion", TextList),
    // protection_concerns
    ("protection_status", Text),
    ("urgent_protection_concern", YesNo),
    ("risk_level", Text),
    ("displacement_status", Text),
    ("protection_concerns", TextList),
    ("disability_type", Text),
    (
        "protection_concern_detail_subform_section",
        Subform(PROTECTION_CONCERN_DETAILS),
    ),
    // data_confidentiality
    ("interview_subject", Text),
    ("consent_for_services", YesNo),
    ("disclosure_other_orgs", YesNo),
    ("consent_reporting", YesNo),
    ("consent_for_tracing", YesNo),
    ("consent_info_sharing", TextList),
    ("disclosure_deny_details", Text),
    ("legitimate_basis", TextList),
    // A field of referrals and transfers in Primero (referrals_controller.rb);
    // Examplia's instance keeps it as a custom case field. The reason for an
    // override stays with the referral or transfer: the case has no field for it.
    ("consent_overridden", YesNo),
    // Not in Primero's seed forms: instances that record withdrawal (Examplia
    // does) add these two. Absent elsewhere, so harmless to know.
    ("consent_withdrawn", YesNo),
    ("consent_withdrawn_date", Date),
    // care_arrangements: the rows, and Primero's summary of the latest one.
    (CARE_ARRANGEMENTS, Subform(CARE_ARRANGEMENT_ROW)),
    ("current_care_arrangements_type", Text),
    ("current_name_caregiver", Text),
    // family_details, tracing, incident_details, services, notes
    ("family_details_section", Subform(FAMILY_DETAILS)),
    ("tracing_status", Text),
    ("date_of_separation", Date),
    ("separation_cause", Text),
    ("location_separation", Text),
    ("incident_details", Subform(INCIDENT_DETAILS)),
    ("services_section", Subform(SERVICES)),
    ("notes_section", Subform(NOTES)),
];
