//! The device lifecycle and incident routes of the operator API (revoke, decommission,
//! quarantine, release, repair, transfer, re-commission; incidents), kept apart so the route
//! table stays readable. Same `Endpoint` list as the rest of `crate::routes`.

use serde_json::json;

use super::{Endpoint, get, post};

/// The lifecycle and incident operations, in documentation order.
pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        post(
            "/api/v1/devices/{id}/revoke",
            crate::operator::revoke,
            json!({
                "summary": "Revoke the device and all its certificates",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "responses": {
                    "200": {
                        "description": "revoked",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/RetireResult"}}
                        }
                    }
                }
            }),
        ),
        post(
            "/api/v1/devices/{id}/decommission",
            crate::operator::decommission,
            json!({
                "summary": "Retire the device for good: a connected device gets a signed decommission command (it destroys its keys and disconnects; waited for up to 5 s), then the device is revoked and retired, connected or not",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "responses": {
                    "200": {
                        "description": "decommissioned",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/RetireResult"}}
                        }
                    }
                }
            }),
        ),
        post(
            "/api/v1/devices/{id}/quarantine",
            crate::operator::quarantine,
            json!({
                "summary": "Quarantine the device: it may still connect, but the broker gives it the quarantine policy (its own status topic only) within a second",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "responses": {
                    "200": {
                        "description": "quarantined",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/StateResult"}}
                        }
                    },
                    "404": {"description": "unknown"},
                    "409": {"description": "wrong state"}
                }
            }),
        ),
        post(
            "/api/v1/devices/{id}/release",
            crate::operator::release,
            json!({
                "summary": "Release the device from quarantine: back to active, its attached policies apply again",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "responses": {
                    "200": {
                        "description": "released",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/StateResult"}}
                        }
                    },
                    "404": {"description": "unknown"},
                    "409": {"description": "wrong state"}
                }
            }),
        ),
        post(
            "/api/v1/devices/{id}/repair",
            crate::operator::repair,
            json!({
                "summary": "Send the device for repair (returned by its owner): in_repair, every certificate revoked, live sessions cut; it may not connect or enroll until it is re-commissioned, then it enrolls a fresh key",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "responses": {
                    "200": {
                        "description": "in repair",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/RetireResult"}}
                        }
                    },
                    "404": {"description": "unknown"},
                    "409": {"description": "wrong state (manufactured, revoked, decommissioned, already in repair)"}
                }
            }),
        ),
        post(
            "/api/v1/devices/{id}/transfer",
            crate::operator::transfer,
            json!({
                "summary": "Transfer the device to a new owner: every certificate revoked (affiliation changed) and live sessions cut; the old owner's groups, attributes, device policies, claim tokens and pending rotations removed; the device is manufactured again under the new owner and must enroll a fresh key with a claim token the new owner mints",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RebindRequest"}}}
                },
                "responses": {
                    "200": {
                        "description": "transferred",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RebindResult"}}}
                    },
                    "400": {"description": "no owner, or a bad group or attribute"},
                    "404": {"description": "unknown"},
                    "409": {"description": "in repair, revoked or decommissioned: re-commission instead"}
                }
            }),
        ),
        post(
            "/api/v1/devices/{id}/recommission",
            crate::operator::recommission,
            json!({
                "summary": "Re-commission a device back from repair, revoked or decommissioned, the one way to use its retired id again: manufactured, with the new binding, and it must enroll a fresh key with a claim token",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RebindRequest"}}}
                },
                "responses": {
                    "200": {
                        "description": "re-commissioned",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RebindResult"}}}
                    },
                    "404": {"description": "unknown"},
                    "409": {"description": "not in repair, revoked or decommissioned"}
                }
            }),
        ),
        post(
            "/api/v1/incidents",
            crate::operator::incident_contain,
            json!({
                "summary": "Contain devices as one incident: quarantine (default) or revoke every device named by exactly one of devices, group or query (space-separated key=value terms: group, state, owner, id, attr.<name>), in one registry transaction; their live sessions are cut on every broker within a second; write-ahead audit entries carry the incident id",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ContainRequest"}}}
                },
                "responses": {
                    "201": {
                        "description": "contained",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Containment"}}}
                    },
                    "400": {"description": "bad selection or query"},
                    "404": {"description": "no device matches (audited as a refused incident)"}
                }
            }),
        ),
        get(
            "/api/v1/incidents/{id}",
            crate::operator::incident_report,
            json!({
                "summary": "The incident's report from the audit log: action, selection, reason, evidence, affected devices, revoked certificates, and every entry of its timeline with an inclusion proof verified against the log's key",
                "security": [{"adminToken": []}, {"clientCertificate": []}],
                "responses": {
                    "200": {
                        "description": "report",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IncidentReport"}}}
                    },
                    "404": {"description": "unknown incident"}
                }
            }),
        ),
    ]
}
