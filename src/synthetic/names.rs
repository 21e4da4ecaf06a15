//! What each survey calls the simulator's quantities, in every published
//! schema version we know of (ZTF 1.x-4.x; Rubin 4.x-11.x and later keep
//! these names). Unknown names are filled by default, so a new version with
//! new fields works unchanged.

use super::fill::{Quantity as Q, Role, Scope, Stamp};

fn value(q: Q) -> Option<Role> {
    Some(Role::Value(q))
}

fn nested(scope: Scope) -> Option<Role> {
    Some(Role::Nested(scope))
}

/// ZTF's names.
pub fn ztf(scope: Scope, name: &str) -> Option<Role> {
    match scope {
        Scope::Alert => match name {
            "objectId" => value(Q::ObjectId),
            "candid" => value(Q::SourceId),
            "schemavsn" => value(Q::SchemaVersion),
            "candidate" => nested(Scope::Detection),
            "prv_candidates" => nested(Scope::Previous),
            "fp_hists" => nested(Scope::Forced),
            "cutoutScience" => nested(Scope::Cutout(Stamp::Science)),
            "cutoutTemplate" => nested(Scope::Cutout(Stamp::Template)),
            "cutoutDifference" => nested(Scope::Cutout(Stamp::Difference)),
            _ => None,
        },
        Scope::Detection | Scope::Previous => ztf_detection(name),
        Scope::Forced => match name {
            "jd" => value(Q::Jd),
            "fid" => value(Q::BandId),
            "pid" => value(Q::ProcessingId),
            "field" => value(Q::Field),
            "rcid" => value(Q::Detector),
            "programid" => value(Q::ProgramId),
            "forcediffimflux" => value(Q::ForcedFlux),
            "forcediffimfluxunc" => value(Q::ForcedFluxErr),
            "magzpsci" => value(Q::ZeroPoint),
            "diffmaglim" => value(Q::LimitingMag),
            _ => None,
        },
        Scope::Cutout(stamp) => match name {
            "fileName" => value(Q::StampName(stamp)),
            "stampData" => value(Q::StampData(stamp)),
            _ => None,
        },
        _ => None,
    }
}

fn ztf_detection(name: &str) -> Option<Role> {
    match name {
        "jd" => value(Q::Jd),
        "fid" => value(Q::BandId),
        "pid" => value(Q::ProcessingId),
        "candid" => value(Q::SourceId),
        "diffmaglim" => value(Q::LimitingMag),
        "programid" => value(Q::ProgramId),
        "isdiffpos" => value(Q::IsDiffPos),
        "rcid" => value(Q::Detector),
        "field" => value(Q::Field),
        "ra" => value(Q::Ra),
        "dec" => value(Q::Dec),
        "magpsf" => value(Q::Mag),
        "sigmapsf" => value(Q::MagErr),
        "rb" | "drb" => value(Q::Reliability),
        "ssdistnr" => value(Q::SsDistance),
        "ssmagnr" => value(Q::SsMag),
        "ssnamenr" => value(Q::SsName),
        "ndethist" | "ncovhist" => value(Q::NDetections),
        "jdstarthist" | "jdstartref" => value(Q::FirstJd),
        "jdendhist" | "jdendref" => value(Q::LastJd),
        "magzpsci" => value(Q::ZeroPoint),
        "fwhm" => value(Q::Fwhm),
        "elong" => value(Q::Elong),
        "magdiff" => value(Q::MagDiff),
        "nbad" => value(Q::BadPixels),
        _ => None,
    }
}

/// Rubin's names (lsst-alert-packet).
pub fn rubin(scope: Scope, name: &str) -> Option<Role> {
    match scope {
        Scope::Alert => match name {
            "alertId" => value(Q::AlertId),
            "diaSourceId" => value(Q::SourceId),
            "diaSource" => nested(Scope::Detection),
            "prvDiaSources" => nested(Scope::Previous),
            "prvDiaForcedSources" => nested(Scope::Forced),
            "diaObject" => nested(Scope::Object),
            "ssObject" | "ssSource" => nested(Scope::SolarSystem),
            "cutoutDifference" => value(Q::StampData(Stamp::Difference)),
            "cutoutScience" => value(Q::StampData(Stamp::Science)),
            "cutoutTemplate" => value(Q::StampData(Stamp::Template)),
            _ => None,
        },
        Scope::Detection | Scope::Previous | Scope::Forced => rubin_source(name),
        Scope::Object => match name {
            "diaObjectId" => value(Q::ObjectId),
            "ra" => value(Q::Ra),
            "dec" => value(Q::Dec),
            "nDiaSources" => value(Q::NDetections),
            "firstDiaSourceMjdTai" => value(Q::FirstJd),
            "lastDiaSourceMjdTai" => value(Q::LastJd),
            "validityStart" => value(Q::ProcessedMicros),
            "validityStartMjdTai" => value(Q::ProcessedMjd),
            _ => None,
        },
        Scope::SolarSystem => match name {
            "ssObjectId" => value(Q::SsObjectId),
            "diaSourceId" => value(Q::SourceId),
            _ => None,
        },
        Scope::Cutout(_) => None,
    }
}

fn rubin_source(name: &str) -> Option<Role> {
    match name {
        "diaSourceId" | "diaForcedSourceId" => value(Q::SourceId),
        "diaObjectId" => value(Q::ObjectId),
        "ssObjectId" => value(Q::SsObjectId),
        "visit" | "ccdVisitId" => value(Q::Visit),
        "detector" => value(Q::Detector),
        "midpointMjdTai" | "midPointTai" | "midpointTai" => value(Q::Mjd),
        "ra" => value(Q::Ra),
        "dec" | "decl" => value(Q::Dec),
        "raErr" | "raSigma" => value(Q::RaErr),
        "decErr" | "declSigma" | "decSigma" => value(Q::DecErr),
        "psfFlux" | "psFlux" => value(Q::Flux),
        "psfFluxErr" | "psFluxErr" | "psFluxSigma" => value(Q::FluxErr),
        "band" | "filterName" => value(Q::Band),
        "reliability" | "rb" => value(Q::Reliability),
        "isNegative" | "is_negative" => value(Q::IsDiffPos),
        "time_processed" => value(Q::ProcessedMicros),
        "timeProcessedMjdTai" => value(Q::ProcessedMjd),
        "snr" => value(Q::Snr),
        _ => None,
    }
}
