//! The PersistentVolume binder, kube-controller-manager's
//! `persistentvolume-binder`: pairs each Pending claim with a volume and keeps
//! both sides of the pair (`claim.spec.volumeName`, `volume.spec.claimRef`) and
//! their phases in step; a volume whose claim is gone turns Released and is
//! reclaimed as its policy says.
//!
//! Claims of a WaitForFirstConsumer class wait until the scheduler names their
//! consumer's node (`volume.kubernetes.io/selected-node`); then the smallest
//! fitting volume reachable from that node is bound, or, when none exists,
//! the claim is handed to its class's provisioner through the
//! `volume.kubernetes.io/storage-provisioner` annotation. Unlike upstream,
//! where the scheduler itself writes the `claimRef` of a statically matched
//! volume, kite's scheduler only selects the node and the binder does every
//! bind: one writer for bindings, same result.
//!
//! A claim created with no class at all while no default class existed gets
//! the default once one appears (upstream's retroactive default StorageClass
//! assignment): with kite's `local-path` class made at start, claims applied
//! in the same moment still get it.
//!
//! Reclaiming: `Retain` leaves a Released volume alone; `Delete` is the
//! provisioner's job (it created the volume and knows how to remove it, see
//! [`super::local_path`]); a `Delete` volume no provisioner owns fails, as
//! upstream's does when no plugin can delete it.

use crate::{Config, Result, work};
use k8s_openapi::api::core::v1::{
    Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kite_api::volume_binding::{
    self as vb, BETA_STORAGE_PROVISIONER, BIND_COMPLETED, BOUND_BY_CONTROLLER, NO_PROVISIONER,
    PROVISIONED_BY, STORAGE_PROVISIONER,
};
use kite_client::events::{NORMAL, WARNING};
use kite_client::{Change, Informer, Recorder, WorkQueue, key_of};
use kube::Resource;
use kube::api::{Api, PostParams};
use std::time::Duration;

/// How often an unbound claim is looked at again without any change, like
/// upstream's periodic resync: an event that was missed costs at most this.
const RESYNC: Duration = Duration::from_secs(15);

/// The binder's verdict on an unbound claim, before any write.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// Bind to this volume.
    Bind(String),
    /// Wait for the scheduler to choose a node.
    WaitForConsumer,
    /// Ask this provisioner for a volume.
    Provision(String),
    /// Nothing fits and nothing can be made: the event's type, reason and message.
    Stuck(&'static str, &'static str, String),
}

/// What to do with an unbound claim, given the cluster as the caches see it
/// (`node`: the Node the scheduler selected, when the claim names one).
pub fn plan(
    claim: &PersistentVolumeClaim,
    volumes: &[&PersistentVolume],
    class: Option<&StorageClass>,
    node: Option<&Node>,
) -> Plan {
    let class_name = vb::claim_class(claim);
    let delay = class.is_some_and(vb::waits_for_first_consumer);
    let node = if delay { node } else { None };
    if let Some(volume) = vb::find_match(claim, volumes.iter().copied(), node, delay) {
        return Plan::Bind(volume.metadata.name.clone().unwrap_or_default());
    }
    // A node the caches do not know yet still counts as chosen: the
    // provisioner decides with the name alone.
    if delay && vb::selected_node(claim).is_none() {
        return Plan::WaitForConsumer;
    }
    if class_name.is_empty() {
        return Plan::Stuck(
            NORMAL,
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set".into(),
        );
    }
    match class {
        None => Plan::Stuck(
            WARNING,
            "ProvisioningFailed",
            format!("storageclass.storage.k8s.io {class_name:?} not found"),
        ),
        Some(class) if class.provisioner == NO_PROVISIONER => Plan::Stuck(
            WARNING,
            "ProvisioningFailed",
            format!("no volume plugin matched name: {NO_PROVISIONER}"),
        ),
        Some(class) => Plan::Provision(class.provisioner.clone()),
    }
}

/// The PersistentVolume binder.
pub struct Controller {
    client: kube::Client,
    claims: Informer<PersistentVolumeClaim>,
    volumes: Informer<PersistentVolume>,
    classes: Informer<StorageClass>,
    nodes: Informer<Node>,
    claim_queue: WorkQueue,
    volume_queue: WorkQueue,
    recorder: Recorder,
}

impl Controller {
    /// A binder over the shared informers.
    pub fn new(
        config: &Config,
        claims: Informer<PersistentVolumeClaim>,
        volumes: Informer<PersistentVolume>,
        classes: Informer<StorageClass>,
        nodes: Informer<Node>,
    ) -> Self {
        let claim_queue = WorkQueue::new();
        let volume_queue = WorkQueue::new();
        let (cq, vq) = (claim_queue.clone(), volume_queue.clone());
        claims.on_change(move |change| {
            let claim = change.object();
            cq.add(&key_of(&claim.metadata));
            if let Some(volume) = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref())
                && !volume.is_empty()
            {
                vq.add(volume);
            }
        });
        let (cq, vq) = (claim_queue.clone(), volume_queue.clone());
        volumes.on_change(move |change| {
            let volume = change.object();
            vq.add(volume.metadata.name.as_deref().unwrap_or_default());
            if let Some(claim) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
                cq.add(&format!(
                    "{}/{}",
                    claim.namespace.as_deref().unwrap_or_default(),
                    claim.name.as_deref().unwrap_or_default()
                ));
            }
        });
        // A class created after its claims: look at the claims waiting for it.
        let (cq, waiting) = (claim_queue.clone(), claims.clone());
        classes.on_change(move |change| {
            if matches!(change, Change::Deleted(_)) {
                return;
            }
            let name = change.object().metadata.name.clone().unwrap_or_default();
            let unclassed = |c: &PersistentVolumeClaim| {
                c.spec
                    .as_ref()
                    .is_some_and(|s| s.storage_class_name.is_none())
            };
            for claim in
                waiting.filter(|c| (vb::claim_class(c) == name || unclassed(c)) && unbound(c))
            {
                cq.add(&key_of(&claim.metadata));
            }
        });
        Self {
            client: config.client.clone(),
            recorder: Recorder::new(
                config.client.clone(),
                "persistentvolume-controller",
                &config.host,
            ),
            claims,
            volumes,
            classes,
            nodes,
            claim_queue,
            volume_queue,
        }
    }

    /// Runs until the future is dropped (the informers are run by the caller).
    pub async fn run(self) {
        self.claims.wait_synced().await;
        self.volumes.wait_synced().await;
        self.classes.wait_synced().await;
        self.nodes.wait_synced().await;
        tokio::join!(
            work("persistentvolume-binder", self.claim_queue.clone(), |key| {
                self.sync_claim(key)
            }),
            work(
                "persistentvolume-binder",
                self.volume_queue.clone(),
                |key| { self.sync_volume(key) }
            ),
        );
    }

    async fn sync_claim(&self, key: String) -> Result<Option<Duration>> {
        let Some(claim) = self.claims.get(&key) else {
            return Ok(None);
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if volume_name.is_empty() {
            return self.sync_unbound_claim(&claim).await;
        }
        let Some(volume) = self.volumes.get(&volume_name) else {
            if phase_of_claim(&claim) == "Bound" {
                self.recorder.publish(
                    claim.object_ref(&()),
                    WARNING,
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                );
                self.write_claim_status(&claim, "Lost", None).await?;
            }
            return Ok(Some(RESYNC));
        };
        let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        match claim_ref {
            // The user pre-bound the claim to a free volume: complete it.
            None => {
                if let Some(why) = vb::mismatch(&claim, &volume) {
                    self.recorder.publish(
                        claim.object_ref(&()),
                        WARNING,
                        "VolumeMismatch",
                        &format!("Cannot bind to requested volume {volume_name:?}: {why}"),
                    );
                    return Ok(Some(RESYNC));
                }
                self.bind(&claim, &volume).await?;
                Ok(None)
            }
            Some(_) if vb::is_bound_to(&volume, &claim) => {
                self.bind(&claim, &volume).await?;
                Ok(None)
            }
            Some(_) => {
                if phase_of_claim(&claim) == "Bound" {
                    self.recorder.publish(
                        claim.object_ref(&()),
                        WARNING,
                        "ClaimMisbound",
                        "Two claims are bound to the same volume, this one is bound incorrectly",
                    );
                    self.write_claim_status(&claim, "Lost", None).await?;
                } else {
                    self.recorder.publish(
                        claim.object_ref(&()),
                        WARNING,
                        "FailedBinding",
                        &format!("volume {volume_name:?} already bound to a different claim."),
                    );
                }
                Ok(Some(RESYNC))
            }
        }
    }

    async fn sync_unbound_claim(&self, claim: &PersistentVolumeClaim) -> Result<Option<Duration>> {
        let class = self.classes.get(vb::claim_class(claim));
        let node = vb::selected_node(claim).and_then(|n| self.nodes.get(n));
        let volumes = self.volumes.list();
        let candidates: Vec<&PersistentVolume> = volumes.iter().map(AsRef::as_ref).collect();
        let reference = claim.object_ref(&());
        let plan = plan(claim, &candidates, class.as_deref(), node.as_deref());
        // Nothing to bind to now: a claim with no class takes the default.
        if !matches!(plan, Plan::Bind(_))
            && let Some(default) = self.retroactive_class(claim)
        {
            let mut updated = claim.clone();
            updated.spec.get_or_insert_default().storage_class_name = Some(default);
            self.replace_claim(&updated).await?;
            return Ok(None);
        }
        match plan {
            Plan::Bind(name) => {
                if let Some(volume) = self.volumes.get(&name) {
                    self.bind(claim, &volume).await?;
                }
                Ok(None)
            }
            Plan::WaitForConsumer => {
                self.recorder.publish(
                    reference,
                    NORMAL,
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                );
                self.write_claim_status(claim, "Pending", None).await?;
                Ok(Some(RESYNC))
            }
            Plan::Provision(provisioner) => {
                self.ask_provisioner(claim, &provisioner).await?;
                self.recorder.publish(
                    reference,
                    NORMAL,
                    "ExternalProvisioning",
                    &format!(
                        "Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."
                    ),
                );
                self.write_claim_status(claim, "Pending", None).await?;
                Ok(Some(RESYNC))
            }
            Plan::Stuck(kind, reason, message) => {
                self.recorder.publish(reference, kind, reason, &message);
                self.write_claim_status(claim, "Pending", None).await?;
                Ok(Some(RESYNC))
            }
        }
    }

    /// The default class for a claim made before any default existed (no
    /// class at all, not even `""`), as upstream's retroactive assignment.
    fn retroactive_class(&self, claim: &PersistentVolumeClaim) -> Option<String> {
        let unclassed = claim
            .spec
            .as_ref()
            .is_some_and(|s| s.storage_class_name.is_none())
            && claim
                .metadata
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key(vb::BETA_STORAGE_CLASS));
        if !unclassed {
            return None;
        }
        let classes = self.classes.list();
        vb::default_class(classes.iter().map(AsRef::as_ref)).and_then(|c| c.metadata.name.clone())
    }

    /// Writes the provisioner annotations, unless the claim already has them.
    async fn ask_provisioner(
        &self,
        claim: &PersistentVolumeClaim,
        provisioner: &str,
    ) -> Result<()> {
        let annotations = claim.metadata.annotations.clone().unwrap_or_default();
        if annotations.get(STORAGE_PROVISIONER).map(String::as_str) == Some(provisioner)
            && annotations
                .get(BETA_STORAGE_PROVISIONER)
                .map(String::as_str)
                == Some(provisioner)
        {
            return Ok(());
        }
        let mut updated = claim.clone();
        let annotations = updated.metadata.annotations.get_or_insert_default();
        annotations.insert(STORAGE_PROVISIONER.into(), provisioner.into());
        annotations.insert(BETA_STORAGE_PROVISIONER.into(), provisioner.into());
        self.replace_claim(&updated).await?;
        Ok(())
    }

    /// Completes the binding of `claim` to `volume` on both sides; each step
    /// is skipped when already done, so a retry picks up where a failure left.
    async fn bind(&self, claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> Result<()> {
        let volume_name = volume.metadata.name.clone().unwrap_or_default();
        // The volume side first: a claim never points at a volume not
        // reserved for it.
        let mut volume = volume.clone();
        let claim_uid = claim.metadata.uid.clone();
        let reserved = volume
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some_and(|r| r.uid.is_some() && r.uid == claim_uid);
        if !reserved {
            let spec = volume.spec.get_or_insert_default();
            if spec.claim_ref.is_none() {
                volume
                    .metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(BOUND_BY_CONTROLLER.into(), "yes".into());
            }
            let spec = volume.spec.get_or_insert_default();
            spec.claim_ref = Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: claim_uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                ..Default::default()
            });
            volume.metadata.managed_fields = None;
            volume = Api::<PersistentVolume>::all(self.client.clone())
                .replace(&volume_name, &PostParams::default(), &volume)
                .await?;
        }
        if phase_of_volume(&volume) != "Bound" {
            self.write_volume_status(&volume, "Bound", None).await?;
        }

        let mut claim = claim.clone();
        let annotations = claim.metadata.annotations.clone().unwrap_or_default();
        let named = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .is_some_and(|v| !v.is_empty());
        if !named || !annotations.contains_key(BIND_COMPLETED) {
            let annotations = claim.metadata.annotations.get_or_insert_default();
            if !named {
                annotations.insert(BOUND_BY_CONTROLLER.into(), "yes".into());
            }
            annotations.insert(BIND_COMPLETED.into(), "yes".into());
            claim.spec.get_or_insert_default().volume_name = Some(volume_name.clone());
            claim = self.replace_claim(&claim).await?;
        }
        let spec = volume.spec.clone().unwrap_or_default();
        let status = claim.status.clone().unwrap_or_default();
        if status.phase.as_deref() != Some("Bound")
            || status.capacity != spec.capacity
            || status.access_modes != spec.access_modes
        {
            self.write_claim_status(&claim, "Bound", Some(&volume))
                .await?;
        }
        Ok(())
    }

    async fn replace_claim(&self, claim: &PersistentVolumeClaim) -> Result<PersistentVolumeClaim> {
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        let name = claim.metadata.name.clone().unwrap_or_default();
        let mut body = claim.clone();
        body.metadata.managed_fields = None;
        Ok(
            Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &namespace)
                .replace(&name, &PostParams::default(), &body)
                .await?,
        )
    }

    /// Sets the claim's phase (and, once Bound, the capacity and access
    /// modes of its volume), if it changes anything.
    async fn write_claim_status(
        &self,
        claim: &PersistentVolumeClaim,
        phase: &str,
        volume: Option<&PersistentVolume>,
    ) -> Result<()> {
        let mut status = claim.status.clone().unwrap_or_default();
        let before = status.clone();
        status.phase = Some(phase.into());
        if let Some(spec) = volume.and_then(|v| v.spec.as_ref()) {
            status.capacity = spec.capacity.clone();
            status.access_modes = spec.access_modes.clone();
        }
        if status == before {
            return Ok(());
        }
        let mut body = claim.clone();
        body.metadata.managed_fields = None;
        body.status = Some(status);
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        let name = claim.metadata.name.clone().unwrap_or_default();
        match Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &namespace)
            .replace_status(&name, &PostParams::default(), &body)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Sets the volume's phase; a failure carries its reason and message.
    async fn write_volume_status(
        &self,
        volume: &PersistentVolume,
        phase: &str,
        failure: Option<(&str, &str)>,
    ) -> Result<()> {
        let mut body = volume.clone();
        body.metadata.managed_fields = None;
        let old = volume.status.clone().unwrap_or_default();
        let changed = old.phase.as_deref() != Some(phase);
        body.status = Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            message: failure.map(|(_, message)| message.to_string()),
            reason: failure.map(|(reason, _)| reason.to_string()),
            last_phase_transition_time: if changed {
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ))
            } else {
                old.last_phase_transition_time
            },
        });
        let name = volume.metadata.name.clone().unwrap_or_default();
        match Api::<PersistentVolume>::all(self.client.clone())
            .replace_status(&name, &PostParams::default(), &body)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn sync_volume(&self, name: String) -> Result<Option<Duration>> {
        let Some(volume) = self.volumes.get(&name) else {
            return Ok(None);
        };
        if volume.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let spec = volume.spec.clone().unwrap_or_default();
        let phase = phase_of_volume(&volume);
        let Some(reference) = spec.claim_ref.as_ref() else {
            if phase != "Available" {
                self.write_volume_status(&volume, "Available", None).await?;
            }
            return Ok(None);
        };
        let namespace = reference.namespace.clone().unwrap_or_default();
        let claim_name = reference.name.clone().unwrap_or_default();
        let uid = reference.uid.clone().unwrap_or_default();
        let mut claim = self.claims.get(&format!("{namespace}/{claim_name}"));
        if claim.is_none() && !uid.is_empty() {
            // The cache may lag a claim created a moment ago: ask the API
            // before releasing the volume.
            claim = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &namespace)
                .get_opt(&claim_name)
                .await?
                .map(std::sync::Arc::new);
        }
        let claim = claim.filter(|c| uid.is_empty() || c.metadata.uid.as_deref() == Some(&uid));
        match claim {
            // Pre-bound by the user to a claim that is not there yet, or not
            // yet bound: the volume stays Available for it.
            None if uid.is_empty() => {
                if phase != "Available" {
                    self.write_volume_status(&volume, "Available", None).await?;
                }
                Ok(None)
            }
            None => self.release(&volume, phase).await,
            Some(claim) => {
                let claimed = claim
                    .spec
                    .as_ref()
                    .and_then(|s| s.volume_name.as_deref())
                    .unwrap_or_default();
                if claimed == name {
                    if phase != "Bound" {
                        self.write_volume_status(&volume, "Bound", None).await?;
                    }
                } else if claimed.is_empty() {
                    self.claim_queue.add(&key_of(&claim.metadata));
                } else if annotation(&volume, BOUND_BY_CONTROLLER) == Some("yes") {
                    // The claim went to another volume: free ours.
                    let mut body = (*volume).clone();
                    body.metadata.managed_fields = None;
                    if let Some(spec) = body.spec.as_mut() {
                        spec.claim_ref = None;
                    }
                    if let Some(annotations) = body.metadata.annotations.as_mut() {
                        annotations.remove(BOUND_BY_CONTROLLER);
                    }
                    Api::<PersistentVolume>::all(self.client.clone())
                        .replace(&name, &PostParams::default(), &body)
                        .await?;
                } else {
                    self.release(&volume, phase).await?;
                }
                Ok(None)
            }
        }
    }

    /// The claim is gone: the volume turns Released and its policy decides.
    async fn release(&self, volume: &PersistentVolume, phase: &str) -> Result<Option<Duration>> {
        let policy = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            .unwrap_or("Retain");
        if phase == "Failed" {
            return Ok(None);
        }
        if phase != "Released" {
            self.write_volume_status(volume, "Released", None).await?;
        }
        // A provisioned volume is deleted by its provisioner, whenever it runs.
        let owned = annotation(volume, PROVISIONED_BY).is_some();
        match policy {
            "Delete" if !owned => {
                let name = volume.metadata.name.as_deref().unwrap_or_default();
                let message = format!(
                    "error getting deleter volume plugin for volume {name:?}: no deletable volume plugin matched"
                );
                self.recorder.publish(
                    volume.object_ref(&()),
                    WARNING,
                    "VolumeFailedDelete",
                    &message,
                );
                self.write_volume_status(volume, "Failed", Some(("VolumeFailedDelete", &message)))
                    .await?;
            }
            "Recycle" => {
                let message = "no volume plugin matched the recycler";
                self.recorder.publish(
                    volume.object_ref(&()),
                    WARNING,
                    "VolumeFailedRecycle",
                    message,
                );
                self.write_volume_status(volume, "Failed", Some(("VolumeFailedRecycle", message)))
                    .await?;
            }
            // Retain keeps it Released; Delete goes to its provisioner.
            _ => {}
        }
        Ok(None)
    }
}

fn annotation<'a>(volume: &'a PersistentVolume, key: &str) -> Option<&'a str> {
    volume
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn unbound(claim: &PersistentVolumeClaim) -> bool {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_none_or(str::is_empty)
}

fn phase_of_claim(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn phase_of_volume(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
