//! Generates the protobuf descriptor table of `kite_api::protobuf`.
//!
//! The table comes from the sources of the `k8s-pb` crate (prost-generated
//! structs for every Kubernetes message): each `pub struct` is a message, each
//! `#[prost(<type>, <label>, tag = "N")]` attribute a field, and the field's
//! Rust type names the referenced message. Nothing is compiled or reflected:
//! the sources are scanned as text, so the script needs no dependencies.
//!
//! The crate is located with `cargo metadata` (works with vendored and
//! registry sources alike; the registry under `$CARGO_HOME` is the fallback);
//! `KITE_K8S_PB_SRC` overrides the location.
//! The output, `$OUT_DIR/protobuf_table.rs`, holds `MESSAGES` (package,
//! struct name, fields) and `GROUPS` (API group → package prefix, from the
//! crate's `Resource` impls); `src/protobuf/table.rs` includes it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KITE_K8S_PB_SRC");
    let src = match std::env::var_os("KITE_K8S_PB_SRC") {
        Some(dir) => PathBuf::from(dir),
        None => locate_k8s_pb(),
    };
    println!("cargo:rerun-if-changed={}", src.display());

    let mut files = Vec::new();
    collect_files(&src, &src, &mut files);
    files.sort();
    let mut parsed = Parsed::default();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        parse_file(module, &text, &mut parsed);
    }
    assert!(
        parsed.structs.len() > 500,
        "k8s-pb sources at {} hold only {} messages",
        src.display(),
        parsed.structs.len()
    );
    let out = render(&parsed);
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"))
        .join("protobuf_table.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
}

/// The `src` directory of the `k8s-pb` package in this build's dependency
/// graph: from `cargo metadata` (offline first), else from the registry
/// sources under `$CARGO_HOME` at the version `Cargo.lock` names.
fn locate_k8s_pb() -> PathBuf {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let lock = manifest_dir
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|p| p.is_file());
    if let Some(lock) = &lock {
        println!("cargo:rerun-if-changed={}", lock.display());
    }
    for offline in [true, false] {
        if let Some(src) = from_metadata(&manifest_dir.join("Cargo.toml"), offline) {
            return src;
        }
    }
    from_registry(lock.as_deref())
        .expect("k8s-pb sources not found; set KITE_K8S_PB_SRC to its src directory")
}

fn from_metadata(manifest: &Path, offline: bool) -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest);
    if let Ok(target) = std::env::var("TARGET") {
        command.args(["--filter-platform", &target]);
    }
    if offline {
        command.arg("--offline");
    }
    let output = command.output().ok().filter(|o| o.status.success())?;
    let json = String::from_utf8_lossy(&output.stdout);
    json_strings(&json, "\"manifest_path\":\"")
        .map(PathBuf::from)
        .filter(|manifest| {
            let dir = manifest
                .parent()
                .and_then(Path::file_name)
                .and_then(|n| n.to_str());
            dir.is_some_and(|d| d == "k8s-pb" || d.starts_with("k8s-pb-"))
        })
        .filter_map(|manifest| manifest.parent().map(|d| d.join("src")))
        .find(|src| src.join("api/core/v1/mod.rs").is_file())
}

fn from_registry(lock: Option<&Path>) -> Option<PathBuf> {
    let lock = std::fs::read_to_string(lock?).ok()?;
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"k8s-pb\"\n"))?
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))?
        .trim_end_matches('"')
        .to_string();
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .map(|index| index.path().join(format!("k8s-pb-{version}/src")))
        .find(|src| src.join("api/core/v1/mod.rs").is_file())
}

/// Every JSON string value following `key` in `json`, unescaped (enough for paths).
fn json_strings<'a>(json: &'a str, key: &'a str) -> impl Iterator<Item = String> + 'a {
    json.match_indices(key).map(move |(at, _)| {
        let mut value = String::new();
        let mut chars = json[at + key.len()..].chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                other => value.push(other),
            }
        }
        value
    })
}

/// `(module path, file)` for every `mod.rs`/`lib.rs` below `root`.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(Vec<String>, PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, out);
        } else if path.file_name().is_some_and(|n| n == "mod.rs") {
            let rel = path
                .parent()
                .and_then(|p| p.strip_prefix(root).ok())
                .unwrap_or(Path::new(""));
            let module = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            out.push((module, path));
        }
    }
}

#[derive(Default)]
struct Parsed {
    /// (module path, struct name) → fields.
    structs: BTreeMap<(Vec<String>, String), Vec<Field>>,
    /// API group → module path without the version, from `Resource` impls.
    groups: BTreeMap<String, Vec<String>>,
}

struct Field {
    tag: u32,
    name: String,
    label: &'static str,
    /// Scalar kind, or `Message` with the referenced type's path.
    kind: String,
    message: Option<(Vec<String>, String)>,
}

fn parse_file(module: &[String], text: &str, parsed: &mut Parsed) {
    let mut lines = text.lines().peekable();
    let mut current: Option<String> = None;
    let mut impl_for = false;
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest
                .trim_end_matches("{}")
                .trim_end_matches('{')
                .trim()
                .to_string();
            if rest.ends_with("{}") {
                parsed.structs.insert((module.to_vec(), name), Vec::new());
            } else if rest.ends_with('{') {
                parsed
                    .structs
                    .insert((module.to_vec(), name.clone()), Vec::new());
                current = Some(name);
            }
            continue;
        }
        if line == "}" {
            current = None;
            impl_for = false;
            continue;
        }
        if line.starts_with("impl crate::Resource for ") {
            impl_for = true;
            continue;
        }
        let trimmed = line.trim();
        if impl_for {
            if let (Some(group), Some((_, parent))) =
                (const_value(trimmed, "GROUP"), module.split_last())
            {
                parsed
                    .groups
                    .entry(group)
                    .or_insert_with(|| parent.to_vec());
            }
            continue;
        }
        let (Some(name), Some(attr)) = (&current, trimmed.strip_prefix("#[prost(")) else {
            continue;
        };
        let attr = attr.trim_end_matches(")]").to_string();
        // Skip doc comments and other attributes to the field declaration.
        let mut decl = String::new();
        for next in lines.by_ref() {
            let t = next.trim();
            if t.starts_with("///") || t.starts_with("#[") {
                continue;
            }
            decl.push_str(t);
            if balanced(&decl) && decl.ends_with(',') {
                break;
            }
        }
        let field = parse_field(module, &attr, &decl).unwrap_or_else(|| {
            panic!(
                "unparsed field in {}::{name}: {attr} / {decl}",
                module.join("::")
            )
        });
        if let Some(fields) = parsed.structs.get_mut(&(module.to_vec(), name.clone())) {
            fields.push(field);
        }
    }
}

fn const_value(line: &str, name: &str) -> Option<String> {
    let rest = line.strip_prefix(&format!("const {name}: &'static str = \""))?;
    Some(rest.trim_end_matches("\";").to_string())
}

fn balanced(s: &str) -> bool {
    s.chars().filter(|&c| c == '<').count() == s.chars().filter(|&c| c == '>').count()
}

/// One field from its attribute (`message, optional, tag = "1"`) and
/// declaration (`pub name: ::core::option::Option<super::X>,`).
fn parse_field(module: &[String], attr: &str, decl: &str) -> Option<Field> {
    let tag = attr
        .split("tag = \"")
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()?;
    let decl = decl.strip_prefix("pub ")?;
    let (name, ty) = decl.split_once(':')?;
    let name = name.trim().trim_start_matches("r#").to_string();
    let ty = ty.trim().trim_end_matches(',');
    let (label, kind) = if let Some(map) = attr.strip_prefix("btree_map = \"") {
        let (key, value) = map.split('"').next()?.split_once(", ")?;
        if key != "string" {
            return None;
        }
        ("Map", value.to_string())
    } else {
        let kind = attr.split([',', ' ']).next()?.to_string();
        let label = if attr.contains("repeated") {
            "Repeated"
        } else {
            "Single"
        };
        (label, kind)
    };
    let message = if kind == "message" {
        Some(resolve(module, ty)?)
    } else {
        None
    };
    Some(Field {
        tag,
        name,
        label,
        kind,
        message,
    })
}

/// The (module, name) of the message type inside a field's Rust type.
fn resolve(module: &[String], ty: &str) -> Option<(Vec<String>, String)> {
    let mut inner = ty;
    for wrapper in [
        "::core::option::Option<",
        "::prost::alloc::vec::Vec<",
        "::prost::alloc::boxed::Box<",
        "::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,",
    ] {
        if let Some(rest) = inner.strip_prefix(wrapper) {
            inner = rest.trim();
        }
        if let Some(rest) = inner.strip_prefix("::prost::alloc::boxed::Box<") {
            inner = rest.trim();
        }
    }
    let path = inner.trim_end_matches(['>', ',', ' ']);
    let mut segments: Vec<&str> = path.split("::").collect();
    let name = segments.pop()?.to_string();
    let mut target = module.to_vec();
    let mut rest = segments.as_slice();
    if rest.first() == Some(&"crate") {
        target.clear();
        rest = &rest[1..];
    }
    while rest.first() == Some(&"super") {
        target.pop()?;
        rest = &rest[1..];
    }
    target.extend(rest.iter().map(|s| s.to_string()));
    Some((target, name))
}

/// Kubernetes package of a module: `api::core::v1` → `io.k8s.api.core.v1`,
/// `apiextensions_apiserver::pkg::…` → `io.k8s.apiextensions-apiserver.pkg.…`.
fn package(module: &[String]) -> String {
    let mut package = String::from("io.k8s");
    for (i, segment) in module.iter().enumerate() {
        package.push('.');
        if i == 0 {
            package.push_str(&segment.replace('_', "-"));
        } else {
            package.push_str(segment);
        }
    }
    package
}

fn render(parsed: &Parsed) -> String {
    let index: HashMap<&(Vec<String>, String), usize> = parsed
        .structs
        .keys()
        .enumerate()
        .map(|(i, k)| (k, i))
        .collect();
    let mut out = String::from("// @generated by build.rs from the k8s-pb sources.\n\n");
    out.push_str("pub(super) static MESSAGES: &[RawMessage] = &[\n");
    for ((module, name), fields) in &parsed.structs {
        let _ = writeln!(
            out,
            "    RawMessage {{ package: {:?}, name: {name:?}, fields: &[",
            package(module)
        );
        for f in fields {
            let kind = match (&f.message, f.kind.as_str()) {
                (Some(target), _) => {
                    let i = index.get(target).unwrap_or_else(|| {
                        panic!("unresolved message {}::{}", target.0.join("::"), target.1)
                    });
                    format!("Message({i})")
                }
                (None, "string") => "String".into(),
                (None, "bool") => "Bool".into(),
                (None, "int32") => "Int32".into(),
                (None, "int64") => "Int64".into(),
                (None, "double") => "Double".into(),
                (None, k) if k.starts_with("bytes") => "Bytes".into(),
                (None, other) => panic!("unsupported protobuf type {other} in {name}.{}", f.name),
            };
            let _ = writeln!(
                out,
                "        RawField {{ tag: {}, name: {:?}, label: Label::{}, kind: RawKind::{kind} }},",
                f.tag, f.name, f.label
            );
        }
        out.push_str("    ] },\n");
    }
    out.push_str("];\n\npub(super) static GROUPS: &[(&str, &str)] = &[\n");
    for (group, module) in &parsed.groups {
        let _ = writeln!(out, "    ({group:?}, {:?}),", package(module));
    }
    out.push_str("];\n");
    out
}
