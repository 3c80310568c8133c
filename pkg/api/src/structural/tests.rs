use super::*;
use proptest::prelude::*;
use serde_json::json;

/// The messages of validating `obj` (with `spec` under `schema`) after prune and default.
fn errors(spec_schema: Value, spec: Value) -> Vec<String> {
    let schema = json!({"type": "object", "properties": {"spec": spec_schema}});
    let mut obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
    prepare(&schema, &mut obj);
    validate(&schema, &obj)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn check(spec_schema: Value, spec: Value, expected: &[&str]) {
    assert_eq!(
        errors(spec_schema.clone(), spec.clone()),
        expected,
        "schema {spec_schema} spec {spec}"
    );
}

fn props(properties: Value) -> Value {
    json!({"type": "object", "properties": properties})
}

#[test]
fn types_are_reported_like_kube_apiserver() {
    let schema = props(
        json!({"replicas": {"type": "integer"}, "ratio": {"type": "number"}, "on": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}}),
    );
    check(
        schema.clone(),
        json!({"replicas": "string"}),
        &[
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
        ],
    );
    check(
        schema.clone(),
        json!({"replicas": 1.5}),
        &[
            "spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\"",
        ],
    );
    // A whole float is an integer; an integer is a number.
    check(schema.clone(), json!({"replicas": 2.0, "ratio": 3}), &[]);
    check(
        schema.clone(),
        json!({"on": "yes", "tags": [1]}),
        &[
            "spec.on: Invalid value: \"string\": spec.on in body must be of type boolean: \"string\"",
            "spec.tags[0]: Invalid value: \"integer\": spec.tags[0] in body must be of type string: \"integer\"",
        ],
    );
    check(
        schema,
        json!("flat"),
        &["spec: Invalid value: \"string\": spec in body must be of type object: \"string\""],
    );
}

#[test]
fn nullable_and_null_items() {
    let schema = props(
        json!({"a": {"type": "string", "nullable": true}, "b": {"type": "string"}, "l": {"type": "array", "items": {"type": "string"}}}),
    );
    // A null for a non-nullable field without default is pruned, so it is valid.
    check(schema.clone(), json!({"a": null, "b": null}), &[]);
    check(
        schema,
        json!({"l": [null]}),
        &["spec.l[0]: Invalid value: \"null\": spec.l[0] in body must be of type string: \"null\""],
    );
}

#[test]
fn enum_required_and_int_or_string() {
    let schema = json!({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"},
        "size": {"type": "string", "enum": ["S", "M"]},
        "level": {"type": "integer", "enum": [1, 2]},
        "port": {"x-kubernetes-int-or-string": true},
    }});
    check(
        schema.clone(),
        json!({"size": "XL", "level": 3, "port": true}),
        &[
            "spec.level: Unsupported value: 3: supported values: \"1\", \"2\"",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
            "spec.size: Unsupported value: \"XL\": supported values: \"S\", \"M\"",
            "spec.name: Required value",
        ],
    );
    check(
        schema,
        json!({"name": "n", "port": "http", "size": "S"}),
        &[],
    );
}

#[test]
fn numbers() {
    let schema = props(json!({
        "a": {"type": "integer", "minimum": 1, "maximum": 10},
        "b": {"type": "integer", "minimum": 1, "exclusiveMinimum": true, "maximum": 10, "exclusiveMaximum": true},
        "c": {"type": "number", "multipleOf": 0.5},
        "d": {"type": "integer", "multipleOf": 5},
    }));
    check(
        schema.clone(),
        json!({"a": 1, "b": 2, "c": 1.5, "d": 10}),
        &[],
    );
    check(
        schema.clone(),
        json!({"a": 0, "b": 10, "c": 1.2, "d": 7}),
        &[
            "spec.a: Invalid value: 0: spec.a in body should be greater than or equal to 1",
            "spec.b: Invalid value: 10: spec.b in body should be less than 10",
            "spec.c: Invalid value: 1.2: spec.c in body should be a multiple of 0.5",
            "spec.d: Invalid value: 7: spec.d in body should be a multiple of 5",
        ],
    );
    check(
        schema,
        json!({"a": 11, "b": 1}),
        &[
            "spec.a: Invalid value: 11: spec.a in body should be less than or equal to 10",
            "spec.b: Invalid value: 1: spec.b in body should be greater than 1",
        ],
    );
}

#[test]
fn strings_and_formats() {
    let schema = props(json!({
        "short": {"type": "string", "maxLength": 3},
        "long": {"type": "string", "minLength": 2},
        "lower": {"type": "string", "pattern": "^[a-z]+$"},
        "when": {"type": "string", "format": "date-time"},
        "odd": {"type": "string", "format": "not-a-format"},
    }));
    check(
        schema.clone(),
        json!({"short": "abcd", "long": "a", "lower": "ABC", "when": "later", "odd": "x"}),
        &[
            "spec.long: Invalid value: \"a\": spec.long in body should be at least 2 chars long",
            "spec.lower: Invalid value: \"ABC\": spec.lower in body should match '^[a-z]+$'",
            "spec.short: Too long: may not be more than 3 bytes",
            "spec.when: Invalid value: \"later\": spec.when in body must be of type date-time: \"later\"",
        ],
    );
    // Length counts characters, not bytes.
    check(
        schema,
        json!({"short": "ééé", "when": "2024-05-01T10:00:00Z"}),
        &[],
    );
}

#[test]
fn arrays_and_objects() {
    let schema = props(json!({
        "few": {"type": "array", "minItems": 2, "items": {"type": "integer"}},
        "many": {"type": "array", "maxItems": 1, "items": {"type": "integer"}},
        "uniq": {"type": "array", "uniqueItems": true, "items": {"type": "integer"}},
        "small": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}},
        "big": {"type": "object", "minProperties": 2, "additionalProperties": {"type": "string"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    }));
    check(
        schema,
        json!({"few": [1], "many": [1, 2], "uniq": [1, 1], "small": {"a": "1", "b": "2"}, "big": {"a": "1"}, "labels": {"x": 1}}),
        &[
            "spec.big: Invalid value: 1: spec.big in body should have at least 2 properties",
            "spec.few: Invalid value: 1: spec.few in body should have at least 2 items",
            "spec.labels.x: Invalid value: \"integer\": spec.labels.x in body must be of type string: \"integer\"",
            "spec.many: Too many: 2: must have at most 1 item",
            "spec.small: Too many: 2: must have at most 1 item",
            "spec.uniq: Invalid value: \"\": spec.uniq in body shouldn't contain duplicates",
        ],
    );
}

#[test]
fn combinators_add_kube_openapi_sentences() {
    let one_of = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
    check(one_of.clone(), json!({"a": "x"}), &[]);
    check(
        one_of.clone(),
        json!({"a": "x", "b": "y"}),
        &[
            "<nil>: Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found 2 valid alternatives",
        ],
    );
    check(
        one_of,
        json!({}),
        &[
            "<nil>: Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found none valid",
            "spec.a: Required value",
        ],
    );
    let any_of = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "anyOf": [{"properties": {"a": {"minimum": 5}}}, {"properties": {"a": {"maximum": 1}}}]});
    check(any_of.clone(), json!({"a": 0}), &[]);
    check(
        any_of,
        json!({"a": 3}),
        &[
            "<nil>: Invalid value: \"\": \"spec\" must validate at least one schema (anyOf)",
            "spec.a: Invalid value: 3: spec.a in body should be greater than or equal to 5",
        ],
    );
    let all_of = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "allOf": [{"properties": {"a": {"minimum": 5}}}], "not": {"required": ["b"]}});
    check(
        all_of,
        json!({"a": 3, "b": 1}),
        &[
            "spec.a: Invalid value: 3: spec.a in body should be greater than or equal to 5",
            "<nil>: Invalid value: \"\": \"spec\" must validate all the schemas (allOf). None validated",
            "<nil>: Invalid value: \"\": \"spec\" must not validate the schema (not)",
        ],
    );
}

#[test]
fn list_types_reject_repeats() {
    let schema = props(json!({
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
    }));
    check(
        schema.clone(),
        json!({"set": ["a", "b"], "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 1}]}),
        &[],
    );
    check(
        schema,
        json!({"set": ["a", "b", "a"], "ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]}),
        &[
            "spec.ports[1]: Duplicate value: map[string]interface {}{\"name\":\"a\", \"port\":2}",
            "spec.set[2]: Duplicate value: \"a\"",
        ],
    );
}

#[test]
fn embedded_resources_need_api_version_and_kind() {
    let schema = props(
        json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}),
    );
    check(
        schema.clone(),
        json!({"template": {"metadata": {"labels": {"a": "b c"}}}}),
        &[
            "spec.template.apiVersion: Required value: must not be empty",
            "spec.template.kind: Required value: must not be empty",
            "spec.template.metadata.labels: Invalid value: \"b c\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ],
    );
    check(
        schema,
        json!({"template": {"apiVersion": "v1", "kind": "Pod", "spec": {"x": 1}}}),
        &[],
    );
}

#[test]
fn updates_ratchet_unchanged_failures() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"},
        "size": {"type": "string", "maxLength": 2},
        "ports": {"type": "array", "items": {"type": "integer", "maximum": 10}},
    }}}});
    let old = json!({"metadata": {"name": "w"}, "spec": {"size": "large", "ports": [11]}});
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({"a": "b"});
    assert_eq!(validate_update(&schema, &new, &old), vec![]);
    new["spec"]["size"] = json!("huge");
    new["spec"]["ports"] = json!([11, 12]);
    let messages: Vec<String> = validate_update(&schema, &new, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        messages,
        [
            "spec.ports[1]: Invalid value: 12: spec.ports[1] in body should be less than or equal to 10",
            "spec.size: Too long: may not be more than 2 bytes",
            "spec.name: Required value",
        ]
    );
}

#[test]
fn pruning_keeps_declared_and_preserved_fields() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "a": {"type": "string"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"n": {"type": "object", "properties": {"k": {"type": "string"}}}}},
            "m": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
            "tpl": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
        }},
    }});
    let mut obj = json!({
        "apiVersion": "example.com/v1", "kind": "W",
        "metadata": {"name": "w", "bogus": 1, "labels": {"a": "b"}},
        "spec": {"a": "x", "b": "gone", "free": {"any": 1, "n": {"k": "v", "drop": 1}},
            "m": {"one": {"v": "1", "w": "gone"}}, "tpl": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}, "status": {}}},
        "status": {"gone": true},
    });
    let unknown = crate::schema::unknown_fields_in_schema(&schema, &obj);
    prune(&schema, &mut obj);
    assert_eq!(
        obj,
        json!({
            "apiVersion": "example.com/v1", "kind": "W",
            "metadata": {"name": "w", "labels": {"a": "b"}},
            "spec": {"a": "x", "free": {"any": 1, "n": {"k": "v"}}, "m": {"one": {"v": "1"}},
                "tpl": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}},
        })
    );
    assert_eq!(
        unknown,
        [
            "metadata.bogus",
            "spec.b",
            "spec.free.n.drop",
            "spec.m.one.w",
            "spec.tpl.metadata.junk",
            "spec.tpl.status",
            "status"
        ]
    );
}

#[test]
fn defaults_fill_absent_fields_recursively() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "default": {}, "properties": {
        "replicas": {"type": "integer", "default": 1},
        "mode": {"type": "string", "default": "fast"},
        "keep": {"type": "string", "nullable": true, "default": "d"},
        "nested": {"type": "object", "default": {"a": {}}, "properties": {"a": {"type": "object", "properties": {"b": {"type": "string", "default": "deep"}}}}},
        "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {"type": "integer", "default": 7}}}},
        "list": {"type": "array", "items": {"type": "object", "default": {"z": 1}, "properties": {"y": {"type": "string", "default": "i"}}}},
    }}}});
    let mut obj = json!({"metadata": {"name": "w"}, "spec": {"mode": null, "keep": null, "map": {"k": {}}, "list": [{}, null]}});
    prepare(&schema, &mut obj);
    assert_eq!(
        obj["spec"],
        json!({
            "replicas": 1, "mode": "fast", "keep": null,
            "nested": {"a": {"b": "deep"}},
            "map": {"k": {"x": 7}},
            "list": [{"y": "i"}, {"z": 1, "y": "i"}],
        })
    );
    let mut bare = json!({"metadata": {"name": "w"}});
    prepare(&schema, &mut bare);
    assert_eq!(bare["spec"]["replicas"], 1);
    assert_eq!(bare["spec"]["nested"]["a"]["b"], "deep");
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-5i64..50).prop_map(Value::from),
        "[a-z]{0,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-f]{1,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn sample_schema() -> Value {
    json!({"type": "object", "properties": {"spec": {"type": "object", "default": {}, "properties": {
        "a": {"type": "string", "default": "x"},
        "b": {"type": "object", "properties": {"c": {"type": "integer", "default": 3}, "d": {"type": "array", "items": {"type": "object", "properties": {"e": {"type": "string", "default": "y"}}}}}},
        "f": {"type": "object", "additionalProperties": {"type": "object", "properties": {"g": {"type": "boolean", "default": true}}}},
        "h": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "ab": {"type": "object", "nullable": true, "properties": {"a": {"type": "integer"}}},
    }}}})
}

proptest! {
    #[test]
    fn defaulting_is_idempotent(spec in arb_json()) {
        let schema = sample_schema();
        let mut once = json!({"metadata": {"name": "w"}, "spec": spec});
        prepare(&schema, &mut once);
        let mut twice = once.clone();
        prepare(&schema, &mut twice);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn pruned_objects_have_no_unknown_fields(spec in arb_json(), extra in arb_json()) {
        let schema = sample_schema();
        let mut obj = json!({"metadata": {"name": "w", "zz": extra.clone()}, "spec": spec, "other": extra});
        prune(&schema, &mut obj);
        prop_assert_eq!(crate::schema::unknown_fields_in_schema(&schema, &obj), Vec::<String>::new());
    }

    #[test]
    fn validation_never_panics(spec in arb_json()) {
        let schema = sample_schema();
        let mut obj = json!({"metadata": {"name": "w"}, "spec": spec});
        prepare(&schema, &mut obj);
        let _ = validate(&schema, &obj);
    }
}
