use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn canonical(input: &str) -> String {
    LabelSelector::parse(input)
        .unwrap_or_else(|e| panic!("{input}: {e}"))
        .to_string()
}

fn label_error(input: &str) -> String {
    LabelSelector::parse(input).expect_err(input).to_string()
}

#[test]
fn label_selectors_print_back_in_canonical_order() {
    let table = [
        ("", ""),
        ("a=b", "a=b"),
        ("a==b", "a==b"),
        ("a!=b", "a!=b"),
        (
            "  x in (foo,,baz),y,z notin ()  ",
            "x in (,baz,foo),y,z notin ()",
        ),
        ("b in (z,a, a),a", "a,b in (a,z)"),
        ("!a,b", "!a,b"),
        ("a>5,b<-3x", "ERR"),
        ("a>5", "a>5"),
        ("a=", "a="),
        ("a=,b", "a=,b"),
        ("in in (in,notin)", "in in (in,notin)"),
        (
            "example.com/app=web\t,tier = db",
            "example.com/app=web,tier=db",
        ),
        ("a in (x,)", "a in (,x)"),
    ];
    for (input, want) in table {
        if want == "ERR" {
            assert!(LabelSelector::parse(input).is_err(), "{input}");
        } else {
            assert_eq!(canonical(input), want, "{input}");
        }
    }
}

#[test]
fn label_selector_errors_read_like_kube_apiserver() {
    let qualified = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let value = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    let table = [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt".to_string()),
        ("a,", "found '', expected: identifier after ','".into()),
        ("=a", "found '=', expected: !, identifier, or 'end of string'".into()),
        ("a=(b)", "unable to parse requirement: found '(', expected: identifier".into()),
        ("a in b", "unable to parse requirement: found 'b' expected: '('".into()),
        ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'".into()),
        ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".into()),
        ("a foo", "unable to parse requirement: found 'foo', expected: in, notin, =, ==, !=, gt, lt".into()),
        ("!", "unable to parse requirement: found '', expected: identifier".into()),
        ("!a=b", "found '=', expected: ',' or 'end of string'".into()),
        ("-a=b", format!("unable to parse requirement: <nil>: Invalid value: \"-a\": {qualified}")),
        ("a=b c", "found 'c', expected: ',' or 'end of string'".into()),
        ("a=-b", format!("unable to parse requirement: values[0][a]: Invalid value: \"-b\": {value}")),
        (
            "a>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
        ),
    ];
    for (input, want) in table {
        assert_eq!(label_error(input), want, "{input}");
    }
    let err = LabelSelector::parse("a in (-x,-y)").expect_err("invalid values");
    assert_eq!(
        err.to_string(),
        format!(
            "unable to parse requirement: [values[0][a]: Invalid value: \"-x\": {value}, values[1][a]: Invalid value: \"-y\": {value}]"
        )
    );
    assert_eq!(err.status().code, 400);
    assert_eq!(err.status().reason, "BadRequest");
}

#[test]
fn label_requirements_match_like_apimachinery() {
    let set = labels(&[("app", "web"), ("tier", "db"), ("n", "10")]);
    let table = [
        ("", true),
        ("app=web", true),
        ("app==web,tier=db", true),
        ("app!=web", false),
        ("missing!=x", true),
        ("app in (api,web)", true),
        ("app notin (web)", false),
        ("missing notin (web)", true),
        ("missing in (web)", false),
        ("app", true),
        ("!app", false),
        ("!missing", true),
        ("n>9", true),
        ("n>10", false),
        ("n<11", true),
        ("app>1", false),
        ("missing<1", false),
    ];
    for (input, want) in table {
        let selector = LabelSelector::parse(input).expect(input);
        assert_eq!(selector.matches(&set), want, "{input}");
    }
    let json_labels = json!({"app": "web"});
    let map = json_labels.as_object().expect("object");
    assert!(LabelSelector::parse("app=web").expect("valid").matches(map));
}

#[test]
fn exact_match_is_found_for_equality_and_single_in() {
    let s = LabelSelector::parse("a=1,b in (2),c in (3,4),d!=5").expect("valid");
    assert_eq!(s.requires_exact_match("a"), Some("1"));
    assert_eq!(s.requires_exact_match("b"), Some("2"));
    assert_eq!(s.requires_exact_match("c"), None);
    assert_eq!(s.requires_exact_match("d"), None);
}

#[test]
fn label_selector_objects_convert_like_label_selector_as_selector() {
    assert!(
        LabelSelector::from_label_selector(&json!(null))
            .expect("nil")
            .matches_nothing()
    );
    assert!(
        !LabelSelector::from_label_selector(&json!(null))
            .expect("nil")
            .matches(&labels(&[]))
    );
    assert!(
        LabelSelector::from_label_selector(&json!({}))
            .expect("empty")
            .is_empty()
    );
    let s = LabelSelector::from_label_selector(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "zone", "operator": "Exists"}
        ]
    }))
    .expect("valid");
    assert_eq!(
        s.to_string(),
        "app=web,!canary,env notin (dev),tier in (be,fe),zone"
    );
    assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("zone", "a")])));
    assert!(!s.matches(&labels(&[
        ("app", "web"),
        ("tier", "fe"),
        ("zone", "a"),
        ("canary", "1")
    ])));

    let bad_op = LabelSelector::from_label_selector(
        &json!({"matchExpressions": [{"key": "a", "operator": "Equals"}]}),
    );
    assert_eq!(
        bad_op.expect_err("bad op").to_string(),
        "\"Equals\" is not a valid label selector operator"
    );
    let empty_in = LabelSelector::from_label_selector(
        &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
    );
    assert_eq!(
        empty_in.expect_err("empty in").to_string(),
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
    );
    let exists_values = LabelSelector::from_label_selector(
        &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
    );
    assert_eq!(
        exists_values.expect_err("exists with values").to_string(),
        "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"
    );
    let bad_key = LabelSelector::from_label_selector(&json!({"matchLabels": {"a/b/c": "x"}}));
    assert!(
        bad_key
            .expect_err("bad key")
            .to_string()
            .starts_with("key: Invalid value: \"a/b/c\": a qualified name must")
    );
}

#[test]
fn field_selectors_parse_escape_and_sort() {
    let table = [
        ("", ""),
        ("b=1,a=2", "a=2,b=1"),
        ("a==x", "a=x"),
        ("spec.nodeName!=", "spec.nodeName!="),
        (r"a=x\,y\=z\\", r"a=x\,y\=z\\"),
        (",a=1,", "a=1"),
    ];
    for (input, want) in table {
        assert_eq!(
            FieldSelector::parse(input).expect(input).to_string(),
            want,
            "{input}"
        );
    }
    let s = FieldSelector::parse(r"metadata.name=a\,b").expect("valid");
    assert_eq!(s.terms()[0].value, "a,b");
    assert_eq!(s.requires_exact_match("metadata.name"), Some("a,b"));
}

#[test]
fn field_selector_errors_read_like_kube_apiserver() {
    let table = [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        (
            "x=1,foo",
            "invalid selector: 'x=1,foo'; can't understand 'foo'",
        ),
        (
            "a=b=c",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            r"a=b\n",
            r"invalid field selector: invalid escape sequence: \n",
        ),
        (
            r"a=b\",
            r"invalid field selector: invalid escape sequence: \",
        ),
    ];
    for (input, want) in table {
        assert_eq!(
            FieldSelector::parse(input).expect_err(input).to_string(),
            want,
            "{input}"
        );
    }
}

#[test]
fn field_labels_are_converted_per_kind() {
    assert_eq!(
        convert_field_label("", "Pod", "spec.host").expect("alias"),
        "spec.nodeName"
    );
    assert_eq!(
        convert_field_label("", "Pod", "status.podIPs").expect("accepted"),
        "status.podIPs"
    );
    assert_eq!(
        convert_field_label("", "Pod", "foo")
            .expect_err("bad")
            .to_string(),
        "field label not supported: foo"
    );
    assert!(convert_field_label("", "Node", "metadata.namespace").is_err());
    assert_eq!(
        convert_field_label("", "Service", "spec.type").expect("1.31+"),
        "spec.type"
    );
    assert_eq!(
        convert_field_label("events.k8s.io", "Event", "regarding.name").expect("alias"),
        "involvedObject.name"
    );
    assert!(convert_field_label("events.k8s.io", "Event", "involvedObject.name").is_err());
    assert_eq!(
        convert_field_label("batch", "Job", "spec.x")
            .expect_err("bad")
            .to_string(),
        "field label \"spec.x\" not supported for Job"
    );
    assert_eq!(
        convert_field_label("", "ConfigMap", "data.x")
            .expect_err("bad")
            .to_string(),
        "\"data.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    assert!(convert_field_label("apps", "ReplicaSet", "status.replicas").is_err());
    let err =
        FieldSelector::parse_for_kind("spec.nodeName=n1,foo=bar", "", "Pod").expect_err("bad");
    assert_eq!(err.status().message, "field label not supported: foo");
}

#[test]
fn field_sets_expose_each_kinds_selectable_fields() {
    let pod = json!({
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler", "serviceAccountName": "default"},
        "status": {"phase": "Running", "podIP": "10.0.0.2", "podIPs": [{"ip": "10.0.0.2"}]}
    });
    let fields = field_set("", "Pod", &pod);
    assert_eq!(fields["spec.hostNetwork"], "false");
    assert_eq!(fields["status.podIP"], "10.0.0.2");
    assert_eq!(fields["metadata.namespace"], "ns");
    let sel = FieldSelector::parse_for_kind("spec.host=n1,status.phase!=Failed", "", "Pod")
        .expect("valid");
    assert!(sel.matches(&fields));
    let podips =
        FieldSelector::parse_for_kind("status.podIPs=10.0.0.2", "", "Pod").expect("accepted");
    assert!(
        !podips.matches(&fields),
        "status.podIPs is never set, so only the empty value matches"
    );

    let event = json!({
        "metadata": {"name": "e", "namespace": "ns"},
        "regarding": {"kind": "Pod", "name": "p"},
        "reportingController": "kubelet", "reason": "Started", "type": "Normal"
    });
    let fields = field_set("events.k8s.io", "Event", &event);
    assert_eq!(fields["involvedObject.kind"], "Pod");
    assert_eq!(fields["source"], "kubelet");
    let sel = FieldSelector::parse_for_kind(
        "regarding.name=p,reportingController=kubelet",
        "events.k8s.io",
        "Event",
    )
    .expect("valid");
    assert!(sel.matches(&fields));

    let job = json!({"metadata": {"name": "j", "namespace": "ns"}, "status": {"succeeded": 3}});
    assert_eq!(field_set("batch", "Job", &job)["status.successful"], "3");
    let node = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
    assert_eq!(field_set("", "Node", &node)["spec.unschedulable"], "true");
    assert!(!field_set("", "Node", &node).contains_key("metadata.namespace"));
}

#[test]
fn custom_resources_select_by_declared_fields() {
    let declared = vec![".spec.color".to_string(), ".spec.size".to_string()];
    assert_eq!(
        convert_custom_field_label(&declared, "spec.color").expect("declared"),
        "spec.color"
    );
    assert_eq!(
        convert_custom_field_label(&declared, "spec.shape")
            .expect_err("undeclared")
            .to_string(),
        "field label not supported: spec.shape"
    );
    assert!(
        convert_custom_field_label(&[], "spec.color")
            .expect_err("none")
            .to_string()
            .contains("is not a known field selector")
    );
    let obj =
        json!({"metadata": {"name": "x", "namespace": "d"}, "spec": {"color": "red", "size": 3}});
    let fields = custom_field_set(&declared, &obj);
    assert_eq!(fields["spec.size"], "3");
    assert!(
        FieldSelector::parse("spec.color=red,spec.size!=4")
            .expect("valid")
            .matches(&fields)
    );
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9]{0,6}",
        "[a-z]{1,4}\\.[a-z]{2,3}/[A-Za-z][A-Za-z0-9_.-]{0,5}[a-z0-9]",
    ]
}

fn arb_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[A-Za-z0-9]([A-Za-z0-9_.-]{0,5}[A-Za-z0-9])?",
        Just("in".to_string())
    ]
}

fn arb_requirement() -> impl Strategy<Value = Requirement> {
    let op = prop_oneof![
        Just(Operator::Equals),
        Just(Operator::DoubleEquals),
        Just(Operator::NotEquals),
        Just(Operator::In),
        Just(Operator::NotIn),
        Just(Operator::Exists),
        Just(Operator::DoesNotExist),
        Just(Operator::GreaterThan),
        Just(Operator::LessThan),
    ];
    (
        arb_key(),
        op,
        proptest::collection::btree_set(arb_value(), 1..4),
        0i64..100,
    )
        .prop_map(|(key, op, values, n)| {
            let values: Vec<String> = match op {
                Operator::Exists | Operator::DoesNotExist => Vec::new(),
                Operator::In | Operator::NotIn => values.into_iter().collect(),
                Operator::GreaterThan | Operator::LessThan => vec![n.to_string()],
                _ => values.into_iter().take(1).collect(),
            };
            Requirement::new(key, op, values).expect("generated requirements are valid")
        })
}

/// The obvious reading of each operator, written independently of `Requirement::matches`.
fn model(r: &Requirement, set: &BTreeMap<String, String>) -> bool {
    let v = set.get(r.key());
    let vals = r.values();
    match r.operator() {
        Operator::Equals | Operator::DoubleEquals | Operator::In => {
            v.is_some_and(|v| vals.contains(v))
        }
        Operator::NotEquals | Operator::NotIn => v.is_none_or(|v| !vals.contains(v)),
        Operator::Exists => v.is_some(),
        Operator::DoesNotExist => v.is_none(),
        Operator::GreaterThan => v
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|x| x > vals[0].parse().unwrap()),
        Operator::LessThan => v
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|x| x < vals[0].parse().unwrap()),
    }
}

proptest! {
    #[test]
    fn label_selectors_round_trip_through_their_string_form(reqs in proptest::collection::vec(arb_requirement(), 0..5)) {
        let selector = LabelSelector::from_requirements(reqs);
        let reparsed = LabelSelector::parse(&selector.to_string()).expect("canonical form parses");
        prop_assert_eq!(&reparsed, &selector);
    }

    #[test]
    fn label_matching_agrees_with_the_model(
        reqs in proptest::collection::vec(arb_requirement(), 0..4),
        set in proptest::collection::btree_map(arb_key(), prop_oneof![arb_value(), (0i64..100).prop_map(|n| n.to_string())], 0..5),
    ) {
        let selector = LabelSelector::from_requirements(reqs.clone());
        prop_assert_eq!(selector.matches(&set), reqs.iter().all(|r| model(r, &set)));
    }

    #[test]
    fn field_values_survive_escaping(value in ".{0,12}") {
        prop_assert_eq!(unescape_value(&escape_value(&value)).expect("escaped"), value.clone());
        let selector = FieldSelector::parse(&format!("a.b={}", escape_value(&value))).expect("parses");
        prop_assert_eq!(&selector.terms()[0].value, &value);
        prop_assert_eq!(FieldSelector::parse(&selector.to_string()).expect("reparses"), selector);
    }

    #[test]
    fn label_parser_never_panics(input in ".{0,30}") {
        let _ = LabelSelector::parse(&input);
        let _ = FieldSelector::parse(&input);
    }
}
