//! The checked-in CRDs in `crds/` must be exactly what the code generates, and the schema must
//! carry what admins rely on: descriptions, printer columns, subresources, CEL messages.

use convene_operator::crd;
use serde_json::Value;

#[test]
fn checked_in_crds_match_the_code() {
    for folder in ["crds", "charts/convene/crds"] {
        check_folder(folder);
    }
}

fn check_folder(folder: &str) {
    let dir = format!("{}/../{folder}", env!("CARGO_MANIFEST_DIR"));
    for (file, def) in crd::all() {
        let expected = crd::to_yaml(&def);
        let actual = std::fs::read_to_string(format!("{dir}/{file}")).unwrap_or_default();
        assert!(
            actual == expected,
            "{folder}/{file} is out of date: run `cargo run -p convene-operator --bin crdgen -- --write crds/ --write charts/convene/crds/`"
        );
    }
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, vec!["bridgepool.yaml", "recorderpool.yaml", "shard.yaml", "turnpool.yaml"]);
}

fn schema(kind: &str) -> (Value, Value) {
    let (_, def) = crd::all().into_iter().find(|(_, c)| c.spec.names.kind == kind).unwrap();
    let v = serde_json::to_value(&def).unwrap();
    let version = v["spec"]["versions"][0].clone();
    (version["schema"]["openAPIV3Schema"].clone(), version)
}

/// Every property in the schema has a description, so `kubectl explain` reads well.
fn undocumented(path: &str, s: &Value, out: &mut Vec<String>) {
    if let Some(props) = s["properties"].as_object() {
        for (name, p) in props {
            let here = format!("{path}.{name}");
            if p["description"].as_str().is_none_or(str::is_empty)
                && !matches!(name.as_str(), "apiVersion" | "kind" | "metadata")
            {
                out.push(here.clone());
            }
            undocumented(&here, p, out);
            undocumented(&format!("{here}[]"), &p["items"], out);
        }
    }
}

#[test]
fn every_field_is_documented_for_kubectl_explain() {
    for kind in ["Shard", "BridgePool", "TurnPool", "RecorderPool"] {
        let (s, _) = schema(kind);
        let mut missing = vec![];
        // Kubernetes' own embedded types (tolerations, resources) come with their docs.
        undocumented(kind, &s["properties"]["spec"], &mut missing);
        assert!(missing.is_empty(), "{kind} fields without description: {missing:?}");
    }
}

#[test]
fn bridgepool_has_scale_and_status_subresources_and_useful_columns() {
    let (_, v) = schema("BridgePool");
    let scale = &v["subresources"]["scale"];
    assert_eq!(scale["specReplicasPath"], ".spec.replicas");
    assert_eq!(scale["statusReplicasPath"], ".status.replicas");
    assert_eq!(scale["labelSelectorPath"], ".status.selector");
    assert!(v["subresources"]["status"].is_object());
    let cols: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for c in ["Desired", "Ready", "Min", "Max", "Endpoints"] {
        assert!(cols.contains(&c), "{c} column in {cols:?}");
    }
    let (_, v) = schema("Shard");
    let cols: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for c in ["URL", "Ready", "Bridges", "Participants"] {
        assert!(cols.contains(&c), "{c} column in {cols:?}");
    }
}

#[test]
fn cross_field_rules_carry_readable_messages() {
    let text: String = crd::all().iter().map(|(_, c)| serde_json::to_string(c).unwrap()).collect();
    for message in [
        "autoscaling.minReplicas must not be greater than autoscaling.maxReplicas",
        "auth.jwt.publicKeysRef is required for RS256 and ES256",
        "storage needs exactly one of volume or s3",
        "relayPorts.min must not be greater than relayPorts.max",
        "ports.media must be between 1024 and 65535",
    ] {
        assert!(text.contains(message), "missing CEL message: {message}");
    }
}

#[test]
fn kubectl_explain_reads_in_whole_sentences_with_defaults_and_bounds() {
    let (s, _) = schema("BridgePool");
    let media = s["properties"]["spec"]["properties"]["ports"]["properties"]["media"]["description"]
        .as_str()
        .unwrap();
    assert!(!media.contains('\n'), "no line break mid-sentence: {media}");
    assert!(media.contains("Default: 10000."), "{media}");
    assert!(media.contains("Rule: ports.media must be between 1024 and 65535."), "{media}");
    let (s, _) = schema("Shard");
    let res = s["properties"]["spec"]["properties"]["signaling"]["properties"]["resources"]["description"]
        .as_str()
        .unwrap();
    assert!(res.contains("Defaults suit a small deployment; size them for production"), "{res}");
    assert_eq!(convene_operator::crd::reflow("a\nb\n\nc\n- d"), "a b\n\nc\n- d");
}
