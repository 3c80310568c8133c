//! ControllerRevisions: the template history DaemonSets and StatefulSets keep
//! (what `kubectl rollout history` and `rollout undo` read).
//!
//! A revision is named `<owner>-<hash>` after a hash of the pod template, holds
//! the template as the patch `kubectl rollout undo` applies, and has the highest
//! `revision` number while it is the current one; going back to an older
//! template renumbers that revision instead of making a new one, as Kubernetes
//! does. Revisions beyond `revisionHistoryLimit` that no pod uses are deleted.

use crate::util::{controlled_by, controller_ref, template_hash};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kite_client::Informer;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// The label naming the revision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The current revision of an owner.
#[derive(Clone, Debug)]
pub struct Current {
    /// `<owner>-<hash>`.
    pub name: String,
    /// The template hash.
    pub hash: String,
    /// Its `revision` number.
    pub number: i64,
}

/// The patch a revision stores: the template, replacing the owner's whole.
pub fn revision_data(template: &PodTemplateSpec) -> serde_json::Value {
    let mut template = serde_json::to_value(template).unwrap_or_default();
    if let Some(t) = template.as_object_mut() {
        t.insert("$patch".into(), "replace".into());
    }
    serde_json::json!({"spec": {"template": template}})
}

/// The owner's revisions in the cache, oldest number first.
pub(crate) fn revisions_of(
    revisions: &Informer<ControllerRevision>,
    owner: &ObjectMeta,
) -> Vec<Arc<ControllerRevision>> {
    let uid = owner.uid.clone().unwrap_or_default();
    let mut list = revisions
        .filter(|r| r.metadata.namespace == owner.namespace && controlled_by(&r.metadata, &uid));
    list.sort_by_key(|r| r.revision);
    list
}

/// Makes the revision for `template` current, creating or renumbering it, and
/// trims history to `limit` revisions besides the current and those in `in_use`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn sync(
    client: &kube::Client,
    revisions: &Informer<ControllerRevision>,
    owner: &ObjectMeta,
    kind: &str,
    template: &PodTemplateSpec,
    collision_count: Option<i32>,
    limit: i32,
    in_use: &HashSet<String>,
) -> Result<Current, kube::Error> {
    let namespace = owner.namespace.clone().unwrap_or_default();
    let owner_name = owner.name.clone().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    let existing = revisions_of(revisions, owner);
    // No collisions yet, whether the status says 0 or nothing, is one hash.
    let hash = template_hash(template, collision_count.filter(|c| *c != 0));
    let name = format!("{owner_name}-{hash}");
    let max = existing.iter().map(|r| r.revision).max().unwrap_or(0);
    let found = existing
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name.as_str()));
    let number = match found {
        Some(r) if r.revision == max => r.revision,
        Some(_) => {
            let patch = serde_json::json!({"revision": max + 1});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            max + 1
        }
        None => {
            let mut labels: BTreeMap<String, String> = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(REVISION_LABEL.to_string(), hash.clone());
            let revision = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    labels: Some(labels),
                    owner_references: Some(vec![controller_ref("apps/v1", kind, owner)]),
                    ..Default::default()
                },
                data: Some(RawExtension(revision_data(template))),
                revision: max + 1,
            };
            match api.create(&PostParams::default(), &revision).await {
                Ok(_) => max + 1,
                // The cache is behind a revision made earlier: it is ours.
                Err(kube::Error::Api(s)) if s.code == 409 => max.max(1),
                Err(error) => return Err(error),
            }
        }
    };
    let old: Vec<&Arc<ControllerRevision>> = existing
        .iter()
        .filter(|r| {
            let rname = r.metadata.name.as_deref().unwrap_or_default();
            let rhash = rname.rsplit('-').next().unwrap_or_default();
            rname != name && !in_use.contains(rname) && !in_use.contains(rhash)
        })
        .collect();
    let excess = old
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    for r in old.into_iter().take(excess) {
        let rname = r.metadata.name.clone().unwrap_or_default();
        match api.delete(&rname, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(Current { name, hash, number })
}
